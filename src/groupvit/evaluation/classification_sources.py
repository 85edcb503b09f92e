"""What the workflow's zero-shot classification jobs classify, and the settings a classification depends on.

Sources: the synthetic world's eval-split object crops when a preset scores the world; under a preset that scores
real datasets (paper), every ImageNet-layout folder <eval_data.root>/classification/<name>/<class name>/<image>.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from groupvit.config import ExperimentConfig

FOLDER = "classification"  # under eval_data.root
NAME = re.compile(r"[A-Za-z0-9][\w-]*")  # a folder name usable as a file name and a Snakemake wildcard
# The eval settings zero-shot classification uses: a segmentation-only setting (bg_thresh, windows, ...) changes
# no classification.
EVAL_KEYS = ("classification_templates", "cls_resize", "cls_crop", "max_images", "batch_size")


def classification_sources(eval_datasets: Sequence[str], eval_root: str | Path) -> dict[str, str | None]:
    """{source name: ImageNet-layout folder, or None for the world's object crops}."""
    if "synthetic" in eval_datasets:
        return {"synthetic": None}
    root = Path(eval_root) / FOLDER
    folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    return {p.name: str(p) for p in folders if NAME.fullmatch(p.name)}


def classification_settings(cfg: ExperimentConfig) -> dict:
    """What a classification computes with besides the checkpoint and the images (a variant's resolved config)."""
    return {**{key: getattr(cfg.eval, key) for key in EVAL_KEYS},
            "mean": list(cfg.data.augment.mean), "std": list(cfg.data.augment.std)}
