"""Training engine: `run_training(cfg, variant, seed, out_dir)` (runner.py) over a small loop (loop.py).

Modules, one job each: schedule (lr as a function of the step), optim (AdamW groups), precision (autocast and
grad scaler), distributed (torchrun/SLURM process groups), checkpointing (atomic, weights_only-safe state files),
metrics_log (metrics.jsonl and step timers), summary (summary.json), data_source (samples, hash, loader),
recipe (the settings a run learns from), finetune (init_from weights, frozen groups), loop, runner. Attributes are
imported lazily so that reading a config (which imports train.config) never pulls in torch.
"""
from __future__ import annotations

from groupvit.lazy import lazy_getattr

_LAZY = {
    "run_training": "runner",
    "train": "runner",
    "ModelParts": "runner",
    "TrainData": "data_source",
    "NonFiniteLossError": "loop",
    "world_info_from_env": "distributed",
}

__getattr__ = lazy_getattr(__name__, _LAZY)

__all__ = sorted(_LAZY)
