"""The learning-rate schedule as a pure function of the optimiser step.

A function of the step (not a stateful torch scheduler) makes resume trivial and exact: the step restored from a
checkpoint fully determines the learning rate, and `WarmupCosine.state_dict()` exists only so a checkpoint records
which schedule produced it. The recipe is the paper's: the learning rate is scaled linearly with the global batch
from `base_lr` at `base_batch_size`, rises linearly from `warmup_lr` over the warmup steps, then follows a per-step
cosine down to `min_lr` at the last step.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass


def scale_lr(base_lr: float, base_batch_size: int, global_batch_size: int) -> float:
    """Linear scaling rule (Goyal et al.): the paper's 1.6e-3 at batch 4096 becomes 1.6e-3 * B / 4096."""
    return base_lr * global_batch_size / base_batch_size


@dataclass(frozen=True)
class WarmupCosine:
    """Linear warmup from `warmup_lr` to `peak_lr` over `warmup_steps`, cosine from `peak_lr` to `min_lr`.

    Step s is the index of the optimiser update about to be taken (0-based); step 0 uses `warmup_lr`. With
    `warmup_prefix=False` (the official code: timm's CosineLRScheduler, t_in_epochs=False) the cosine is measured
    from step 0 over `total_steps` and the warmup replaces its first steps, so the lr just after warmup is
    slightly below the peak; with `warmup_prefix=True` the cosine starts at the peak where the warmup ends. Both
    reach `min_lr` at step `total_steps` (one past the last update).
    """

    peak_lr: float
    total_steps: int
    warmup_steps: int = 0
    warmup_lr: float = 0.0
    min_lr: float = 0.0
    warmup_prefix: bool = False

    def __post_init__(self) -> None:
        if self.total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {self.total_steps}")
        if not 0 <= self.warmup_steps <= self.total_steps:
            raise ValueError(f"warmup_steps must lie in [0, total_steps={self.total_steps}], got {self.warmup_steps}")

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.warmup_lr + (self.peak_lr - self.warmup_lr) * step / self.warmup_steps
        t, span = (step - self.warmup_steps, self.total_steps - self.warmup_steps) if self.warmup_prefix else (
            step, self.total_steps)
        progress = min(1.0, t / span) if span > 0 else 1.0
        return self.min_lr + 0.5 * (self.peak_lr - self.min_lr) * (1.0 + math.cos(math.pi * progress))

    def state_dict(self) -> dict:
        return asdict(self)


def resolve_warmup_steps(warmup_steps: int, warmup_epochs: float, steps_per_epoch: float, total_steps: int) -> int:
    """`warmup_steps` when given, else `warmup_epochs` epochs of steps; never longer than the run itself."""
    steps = warmup_steps if warmup_steps > 0 else round(warmup_epochs * steps_per_epoch)
    return max(0, min(int(steps), total_steps))


def set_lr(optimizer, lr: float) -> None:
    """Write the step's learning rate into every parameter group (both weight-decay groups share it)."""
    for group in optimizer.param_groups:
        group["lr"] = lr


__all__ = ["WarmupCosine", "resolve_warmup_steps", "scale_lr", "set_lr"]
