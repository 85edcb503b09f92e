"""What a training run learns from: the settings whose change makes it a different run.

The trainer refuses to resume a run across a change of its recipe, and the workflow retrains a run exactly when its
recipe changes (an evaluation, study or report setting retrains nothing).
"""
from __future__ import annotations

from typing import Any

from groupvit.dataclass_io import flatten, to_dict

# The config sections a run learns from.
RECIPE_SECTIONS = ("world", "data", "model", "train")
# Settings that change how a run is executed or logged, not what it learns.
OPERATIONAL_KEYS = frozenset({
    "train.checkpoint_every", "train.keep_checkpoints", "train.log_every", "train.time_budget_s", "train.device",
    "train.compile", "train.nonfinite", "train.processes", "data.num_workers",
})


def training_recipe(cfg: Any) -> dict[str, Any]:
    """{dotted key: value} of every setting in RECIPE_SECTIONS that is not operational: what a run learns from.
    Takes an ExperimentConfig or its dict form (a checkpoint's saved config, which may predate a section)."""
    raw = cfg if isinstance(cfg, dict) else to_dict(cfg)
    flat = flatten({section: raw.get(section, {}) for section in RECIPE_SECTIONS})
    return {key: value for key, value in flat.items() if key not in OPERATIONAL_KEYS}
