"""AdamW with weight-decay exemptions in the official style.

Decaying a norm's gain, a bias, a position embedding, a learned group token or a logit temperature pulls it towards
zero for no regularising benefit (a decayed logit scale fights the contrastive loss), so such parameters go into a
group with weight_decay 0. A parameter is exempt when it is 1-D or its name ends in `.bias` (the official rule,
NVlabs/GroupViT utils/optimizer.py), or its name contains one of `no_decay_keywords` (train.no_weight_decay_keywords:
position embeddings, group tokens, logit scales by default; the official code passes an empty list, which `[]`
reproduces exactly), or the model lists it in a timm-style `no_weight_decay()`. Frozen parameters (requires_grad
False, e.g. a frozen MiniLM text tower) are left out of the optimiser entirely.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def is_no_decay(name: str, param: torch.Tensor, keywords: Sequence[str] = ()) -> bool:
    """Whether `param` (called `name` in the model) is exempt from weight decay."""
    if param.ndim == 1 or name.endswith(".bias"):
        return True
    return any(key in name for key in keywords)


def param_groups(model: nn.Module, weight_decay: float, no_decay_keywords: Sequence[str] = ()) -> list[dict]:
    """Two AdamW groups, decayed then exempt, each also carrying its parameter names (for tests and logs)."""
    keywords = tuple(no_decay_keywords)
    if hasattr(model, "no_weight_decay"):
        keywords += tuple(model.no_weight_decay())
    decay: list[tuple[str, nn.Parameter]] = []
    no_decay: list[tuple[str, nn.Parameter]] = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if is_no_decay(name, param, keywords) else decay).append((name, param))
    return [
        {"params": [p for _, p in decay], "names": [n for n, _ in decay], "weight_decay": weight_decay},
        {"params": [p for _, p in no_decay], "names": [n for n, _ in no_decay], "weight_decay": 0.0},
    ]


def build_optimizer(
    model: nn.Module,
    *,
    lr: float,
    weight_decay: float,
    betas: Sequence[float] = (0.9, 0.999),
    no_decay_keywords: Sequence[str] = (),
    eps: float = 1e-8,
) -> torch.optim.AdamW:
    """AdamW over `param_groups(model)`; the schedule overwrites `lr` every step.

    Fused kernels on the CPU too (torch >= 2.4): the default per-parameter loop makes ~10 passes over every tensor,
    and the bag-of-words text tower's 49408 x 128 embedding alone then cost ~1/5 of a CPU training step
    (`python benchmarks/cpu_step_speedups.py`). Fused AdamW is one elementwise pass, deterministic on a CPU.
    """
    groups = [g for g in param_groups(model, weight_decay, no_decay_keywords) if g["params"]]
    devices = {p.device.type for g in groups for p in g["params"]}
    fused = devices <= {"cuda", "cpu"} and all(p.is_floating_point() for g in groups for p in g["params"])
    return torch.optim.AdamW(groups, lr=lr, betas=(betas[0], betas[1]), eps=eps, fused=True if fused else None)


__all__ = ["build_optimizer", "is_no_decay", "param_groups"]
