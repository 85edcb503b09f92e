"""The stateful side of the metrics: accumulate per-image counts over a split, then summarise once.

Kept apart from `metrics.py` so the definitions stay pure and testable; this class only adds bookkeeping
(summed confusion matrix, per-image areas for error bars, image ids for the qualitative report).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from groupvit.evaluation.metrics import (
    IGNORE_INDEX,
    areas_from_confusion,
    bootstrap_miou,
    confusion_matrix,
    distribution_summary,
    iou_per_class,
    nanmean,
    summarize_confusion,
)


@dataclass
class SegmentationResult:
    """Split-level metrics (mmseg definition) plus the per-image distribution. Fractions in [0, 1]."""

    class_names: list[str]
    miou: float
    aacc: float
    macc: float
    iou: np.ndarray  # [C], NaN = class neither present nor predicted
    acc: np.ndarray  # [C]
    confusion: np.ndarray  # [C, C], rows = ground truth
    image_ids: list[str]
    per_image_miou: np.ndarray  # [N]
    miou_ci95: tuple[float, float] = (float("nan"), float("nan"))  # bootstrap over images

    @property
    def num_images(self) -> int:
        return len(self.image_ids)

    def per_class(self) -> dict[str, float]:
        return {name: float(v) for name, v in zip(self.class_names, self.iou)}

    def to_dict(self) -> dict:
        """JSON-ready summary (NaN becomes None so strict JSON readers accept it)."""

        def clean(x: float) -> float | None:
            return None if x is None or np.isnan(x) else float(x)

        return {
            "mIoU": clean(self.miou),
            "aAcc": clean(self.aacc),
            "mAcc": clean(self.macc),
            "mIoU_ci95": [clean(self.miou_ci95[0]), clean(self.miou_ci95[1])],
            "num_images": self.num_images,
            "per_class_IoU": {n: clean(v) for n, v in zip(self.class_names, self.iou)},
            "per_class_Acc": {n: clean(v) for n, v in zip(self.class_names, self.acc)},
            "per_image_mIoU": {k: clean(v) if isinstance(v, float) else v
                               for k, v in distribution_summary(self.per_image_miou).items()},
        }


@dataclass
class SegmentationMeter:
    """Collects (prediction, label) pairs image by image."""

    class_names: list[str]
    ignore_index: int = IGNORE_INDEX
    _conf: np.ndarray = field(init=False, repr=False)
    _intersect: list[np.ndarray] = field(default_factory=list, init=False, repr=False)
    _union: list[np.ndarray] = field(default_factory=list, init=False, repr=False)
    _ids: list[str] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        n = len(self.class_names)
        self._conf = np.zeros((n, n), dtype=np.int64)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def update(self, pred: np.ndarray, label: np.ndarray, image_id: str | None = None) -> float:
        """Add one image; returns its own mIoU (classes present in its prediction or ground truth)."""
        conf = confusion_matrix(pred, label, self.num_classes, self.ignore_index)
        self._conf += conf
        intersect, union, _, _ = areas_from_confusion(conf)
        self._intersect.append(intersect)
        self._union.append(union)
        self._ids.append(image_id if image_id is not None else str(len(self._ids)))
        return nanmean(iou_per_class(intersect, union))

    def result(self, bootstrap: int = 0, seed: int = 0) -> SegmentationResult:
        summary = summarize_confusion(self._conf)
        n, c = len(self._ids), self.num_classes
        inter = np.stack(self._intersect) if n else np.zeros((0, c), np.int64)
        union = np.stack(self._union) if n else np.zeros((0, c), np.int64)
        per_image = np.array([nanmean(iou_per_class(i, u)) for i, u in zip(inter, union)], dtype=np.float64)
        ci = bootstrap_miou(inter, union, bootstrap, seed) if bootstrap > 0 else (float("nan"), float("nan"))
        return SegmentationResult(
            class_names=list(self.class_names), miou=summary["mIoU"], aacc=summary["aAcc"], macc=summary["mAcc"],
            iou=summary["IoU"], acc=summary["Acc"], confusion=self._conf.copy(), image_ids=list(self._ids),
            per_image_miou=per_image, miou_ci95=ci,
        )
