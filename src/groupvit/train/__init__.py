"""Training engine: `run_training(cfg, variant, seed, out_dir)` (runner.py) over a small loop (loop.py).

Modules, one job each: schedule (lr as a function of the step), optim (AdamW groups), precision (autocast and
grad scaler), distributed (torchrun/SLURM process groups), checkpointing (atomic, weights_only-safe state files),
metrics_log (metrics.jsonl and step timers), summary (summary.json), data_source (samples, hash, loader), loop,
runner. Attributes are imported lazily so that reading a config (which imports train.config) never pulls in torch.
"""
from __future__ import annotations

from typing import Any

_LAZY = {
    "run_training": "groupvit.train.runner",
    "train": "groupvit.train.runner",
    "ModelParts": "groupvit.train.runner",
    "TrainData": "groupvit.train.data_source",
    "NonFiniteLossError": "groupvit.train.loop",
    "world_info_from_env": "groupvit.train.distributed",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'groupvit.train' has no attribute {name!r}")


__all__ = sorted(_LAZY)
