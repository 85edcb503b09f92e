"""The training loop: optimiser steps from `state.step` to `total_steps`, nothing else.

Everything the loop needs arrives already built (`Engine`); everything it produces leaves through two callbacks
(`log`, `save`) and the returned `LoopResult`. The runner (runner.py) does the wiring: config, model, data,
distributed setup, resume. Keeping the loop this small is what makes it testable with a stand-in model and an
in-memory batch iterator.

Host syncs: the loop never calls `.item()` on a training step except at log, checkpoint and end points, where
the loss terms (averaged over the window and over ranks) are read once. A non-finite loss in `stop` mode is
therefore detected lazily: the first bad step is recorded on the device and checked before anything is logged or
saved, so no checkpoint ever holds non-finite weights and the error names the exact step. `skip` mode must
withhold the update of the bad step itself, so it reads one flag per step (one scalar sync).
"""
from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from groupvit.train.distributed import any_true, is_dist
from groupvit.train.metrics_log import StepTimer
from groupvit.train.schedule import set_lr


class NonFiniteLossError(RuntimeError):
    """The loss became NaN/inf; carries the step and the last checkpoint written before it."""

    def __init__(self, step: int, last_checkpoint: Path | None) -> None:
        self.step = step
        self.last_checkpoint = last_checkpoint
        where = str(last_checkpoint) if last_checkpoint else "none written yet"
        super().__init__(
            f"non-finite loss at step {step} (0-based optimiser step); last good checkpoint: {where}. "
            "Resume from it with a lower lr / longer warmup, or set train.nonfinite=skip to skip such steps."
        )


class DataExhaustedError(RuntimeError):
    """The batch iterator ended before `total_steps`; the loader is expected to repeat its data."""


@dataclass
class LoopState:
    """Progress that a checkpoint stores and a resume restores."""

    step: int = 0  # optimiser steps done
    micro_step: int = 0  # batches drawn from this rank's loader (= the loader's start_step on resume)
    samples_seen: int = 0  # global samples consumed (all ranks, all micro-batches)
    skipped_steps: int = 0  # non-finite steps skipped (nonfinite=skip)
    train_time_s: float = 0.0  # wall time inside the loop, summed over resumes (what time_budget_s limits)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class LoopConfig:
    total_steps: int
    global_batch: int
    grad_accum_steps: int = 1
    clip_grad: float = 0.0  # 0 = no clipping (the norm is still computed and logged)
    nonfinite: str = "stop"  # stop | skip
    log_every: int = 10
    checkpoint_every: int = 1000
    time_budget_s: float = 0.0
    loss_window: int = 50  # the summary's mean-last-N losses


@dataclass
class Engine:
    """The built pieces of one training step."""

    model: nn.Module  # what forward runs on: possibly DDP-wrapped and/or compiled
    loss_fn: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    schedule: Callable[[int], float]
    autocast: Callable[[], AbstractContextManager] = nullcontext
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    model_kwargs: dict[str, Any] = field(default_factory=dict)  # extra forward arguments the loss asks for

    @property
    def params(self) -> list[nn.Parameter]:
        return [p for group in self.optimizer.param_groups for p in group["params"]]


@dataclass
class LoopResult:
    state: LoopState
    budget_limited: bool
    last_checkpoint: Path | None
    final_losses: dict[str, float]  # the last step's loss terms (rank mean)
    mean_last_losses: dict[str, float]  # mean over the last `loss_window` steps (rank mean)
    timing: dict[str, float]  # samples_per_s, data_wait_frac, train_time_s, overhead_s, overhead_frac


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, torch.Tensor]:
    inputs = {"image": batch["image"], "text": batch["text"]}
    if batch.get("prompts") is not None:
        inputs["prompts"] = batch["prompts"]
    return {k: v.to(device, non_blocking=True) for k, v in inputs.items()}


def _next_batch(batches: Iterator[dict[str, Any]]) -> dict[str, Any]:
    """Draw a batch without letting the loader advance the training process's torch RNG.

    DataLoader draws its workers' base seed from the global torch generator whenever it (re)creates an iterator;
    a resumed run creates one at a different point of the stream than the uninterrupted run did, which would shift
    every later random draw (Gumbel noise, drop-path) and break bit-exact resume. The loader owns its own seeds.
    """
    rng = torch.get_rng_state()
    try:
        return next(batches)
    except StopIteration:
        raise DataExhaustedError("the training data iterator ended before the last step") from None
    finally:
        torch.set_rng_state(rng)


def _rank_mean(values: dict[str, torch.Tensor]) -> dict[str, float]:
    """Average scalar tensors over ranks with one all-reduce, then read them (one host sync)."""
    if not values:
        return {}
    names = sorted(values)
    stacked = torch.stack([values[n].detach().float().reshape(()) for n in names])
    if is_dist():
        dist.all_reduce(stacked, op=dist.ReduceOp.SUM)
        stacked /= dist.get_world_size()
    return dict(zip(names, stacked.tolist()))


def train_loop(
    engine: Engine,
    batches: Iterator[dict[str, Any]],
    state: LoopState,
    cfg: LoopConfig,
    *,
    save: Callable[[LoopState], Path | None],
    log: Callable[[dict[str, Any]], None] = lambda record: None,
    extra_metrics: Callable[[], dict[str, Any]] = dict,
    last_checkpoint: Path | None = None,
    progress: Any = None,
) -> LoopResult:
    """Run optimiser steps until `cfg.total_steps` or the time budget; mutates and returns `state`.

    `save(state)` is called on every rank at checkpoint points (it gathers RNG states, rank 0 writes) and returns
    the path written; `log(record)` receives the metrics record at log points (rank 0 writes it).
    """
    model, opt, scaler, device = engine.model, engine.optimizer, engine.scaler, engine.device
    params = engine.params
    accum = cfg.grad_accum_steps
    no_sync = getattr(model, "no_sync", None)
    clip = cfg.clip_grad > 0
    distributed = is_dist()
    # Ranks must agree on the stopping step; with several processes that takes a collective, so the budget is
    # checked at log points there (every step in a single process, where it costs nothing).
    budget_check_every = cfg.log_every if distributed else 1

    timer = StepTimer()
    start = time.monotonic() - state.train_time_s
    overhead_s = 0.0
    budget_limited = False
    first_bad = torch.full((), -1, dtype=torch.long, device=device)
    window: dict[str, torch.Tensor] = {}
    window_steps = 0
    recent: deque[dict[str, torch.Tensor]] = deque(maxlen=cfg.loss_window)
    last: dict[str, torch.Tensor] = {}
    out: dict[str, Any] = {}
    grad_norm = torch.zeros((), device=device)

    model.train()
    opt.zero_grad(set_to_none=True)
    timer.restart()
    while state.step < cfg.total_steps:
        step = state.step
        lr = engine.schedule(step)
        set_lr(opt, lr)
        terms: dict[str, torch.Tensor] = {}
        for micro in range(accum):
            inputs = _to_device(_next_batch(batches), device)
            timer.data_ready()
            sync_ctx = no_sync() if (no_sync is not None and micro < accum - 1) else nullcontext()
            with sync_ctx:
                with engine.autocast():
                    out = model(**inputs, **engine.model_kwargs)
                    losses = engine.loss_fn(**out)
                scaler.scale(losses["loss"] / accum).backward()
            for name, value in losses.items():
                value = value.detach().float() / accum
                terms[name] = terms[name] + value if name in terms else value
        state.micro_step += accum

        scaler.unscale_(opt)
        if clip:
            grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad, foreach=True)
        else:  # the norm is still logged; no rescaling pass
            grad_norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None], foreach=True)
        bad = ~torch.isfinite(terms["loss"])
        if cfg.nonfinite == "skip" and any_true(bad):
            state.skipped_steps += 1
            scaler.update()
        else:
            if cfg.nonfinite == "stop":
                first_bad.masked_fill_(bad & (first_bad < 0), step)
            scaler.step(opt)
            scaler.update()
            for name, value in terms.items():
                window[name] = window[name] + value if name in window else value
            window_steps += 1
            recent.append(terms)
            last = terms
        opt.zero_grad(set_to_none=True)
        state.step += 1
        state.samples_seen += cfg.global_batch
        timer.step_done(cfg.global_batch)
        if progress is not None:
            progress.update(1)

        # --- bookkeeping points: the only places that read device values ---
        is_last = state.step == cfg.total_steps
        log_due = state.step % cfg.log_every == 0 or is_last
        ckpt_due = state.step % cfg.checkpoint_every == 0 or is_last
        if cfg.time_budget_s > 0 and state.step % budget_check_every == 0 and not is_last:
            over = torch.tensor(float(time.monotonic() - start >= cfg.time_budget_s))
            budget_limited = any_true(over) if distributed else bool(over)
            ckpt_due = ckpt_due or budget_limited
        if not (log_due or ckpt_due):
            continue
        t_book = time.perf_counter()
        if cfg.nonfinite == "stop" and any_true(first_bad >= 0):
            bad_step = _first_bad_step(first_bad)
            raise NonFiniteLossError(bad_step, last_checkpoint)
        state.train_time_s = time.monotonic() - start
        if log_due:
            if window_steps:  # (a rank-uniform condition: skipping is decided over all ranks)
                means = _rank_mean({k: v / window_steps for k, v in window.items()})
            else:  # every step of the window was skipped
                means = {k: math.nan for k in terms}
            scales = _rank_mean(
                {k: out[k] for k in ("logit_scale", "multi_label_logit_scale") if isinstance(out.get(k), torch.Tensor)}
            )
            record = {
                "step": state.step, "lr": lr, **means, **scales, "grad_norm": float(grad_norm),
                **timer.window(), "samples_seen": state.samples_seen, "skipped_steps": state.skipped_steps,
                "elapsed_s": round(state.train_time_s, 3), **extra_metrics(),
            }
            log(record)
            if progress is not None:
                progress.set_postfix(loss=f"{means.get('loss', math.nan):.4f}", lr=f"{lr:.2e}", refresh=False)
            window, window_steps = {}, 0
        if ckpt_due:
            last_checkpoint = save(state) or last_checkpoint
        overhead_s += time.perf_counter() - t_book
        timer.restart()  # bookkeeping time is loop overhead, not step time
        if budget_limited:
            break

    state.train_time_s = time.monotonic() - start
    final = _rank_mean(last)
    mean_last = _rank_mean({k: torch.stack([r[k] for r in recent]).mean() for k in recent[0]}) if recent else {}
    timing = timer.totals()
    total = timing["train_time_s"] + overhead_s
    timing.update(
        overhead_s=overhead_s,
        overhead_frac=(overhead_s + timer.total_wait) / total if total > 0 else math.nan,
    )
    return LoopResult(state, budget_limited, last_checkpoint, final, mean_last, timing)


def _first_bad_step(first_bad: torch.Tensor) -> int:
    """The earliest non-finite step over all ranks (-1 marks a rank that saw none)."""
    value = torch.where(first_bad < 0, torch.iinfo(torch.long).max, first_bad).reshape(1).clone()
    if is_dist():
        dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return int(value.item())


__all__ = ["DataExhaustedError", "Engine", "LoopConfig", "LoopResult", "LoopState", "NonFiniteLossError", "train_loop"]
