"""Evaluation splits: synthetic (VOC layout + class_names.txt), Pascal VOC 2012, Pascal Context, COCO-Object."""
from __future__ import annotations

from pathlib import Path

from groupvit.evaluation.datasets.base import DatasetLayoutError, EvalItem, SegDataset, SegSample, read_label_png
from groupvit.evaluation.datasets.coco_object import (
    DEFAULT_COCO_ROOT,
    coco_stuff_to_object,
    convert_coco_stuff_to_object,
    load_coco_object,
)
from groupvit.evaluation.datasets.context import DEFAULT_CONTEXT_ROOT, load_context
from groupvit.evaluation.datasets.voc import DEFAULT_VOC_ROOT, load_synthetic, load_voc

DATASETS = ("synthetic", "voc", "context", "coco_object")
DEFAULT_ROOTS: dict[str, Path] = {"voc": DEFAULT_VOC_ROOT, "context": DEFAULT_CONTEXT_ROOT,
                                  "coco_object": DEFAULT_COCO_ROOT}


def load_eval_dataset(name: str, root: str | Path | None = None, split: str | None = None) -> SegDataset:
    """The named split; `root` defaults to DEFAULT_ROOTS (the synthetic split has no default: it lives under
    data/<preset>/synthetic/eval)."""
    if name == "synthetic":
        if root is None:
            raise ValueError("the synthetic split needs its root, e.g. data/<preset>/synthetic/eval")
        return load_synthetic(root, split or "val")
    if name == "voc":
        return load_voc(root or DEFAULT_VOC_ROOT, split or "val")
    if name == "context":
        return load_context(root or DEFAULT_CONTEXT_ROOT, split or "val")
    if name == "coco_object":
        return load_coco_object(root or DEFAULT_COCO_ROOT, split or "val2017")
    raise ValueError(f"unknown evaluation dataset {name!r}; valid: {DATASETS}")


__all__ = [
    "DATASETS", "DEFAULT_ROOTS", "DatasetLayoutError", "EvalItem", "SegDataset", "SegSample",
    "coco_stuff_to_object", "convert_coco_stuff_to_object", "load_coco_object", "load_context",
    "load_eval_dataset", "load_synthetic", "load_voc", "read_label_png",
]
