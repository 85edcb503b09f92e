"""Run a segmenter over a split: metrics (mmseg definition), group-oracle metrics, qualitative samples."""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from groupvit.evaluation.collector import SegmentationMeter, SegmentationResult
from groupvit.evaluation.datasets.base import EvalItem, SegDataset
from groupvit.evaluation.segmenter import ZeroShotSegmenter


def _chunks(dataset: SegDataset, size: int, limit: int) -> Iterator[list[EvalItem]]:
    n = len(dataset) if limit <= 0 else min(limit, len(dataset))
    for start in range(0, n, max(1, size)):
        yield [dataset[i] for i in range(start, min(n, start + max(1, size)))]


def check_classes(segmenter: ZeroShotSegmenter, dataset: SegDataset) -> None:
    if segmenter.num_classes != dataset.num_classes:
        raise ValueError(f"segmenter has {segmenter.num_classes} labels (with background), "
                         f"{dataset.name} has {dataset.num_classes}")


def evaluate_segmentation(segmenter: ZeroShotSegmenter, dataset: SegDataset, *, max_images: int = 0,
                          images_per_step: int | None = None, bootstrap: int = 0, seed: int = 0,
                          on_image: Callable[[EvalItem, np.ndarray, float], None] | None = None
                          ) -> SegmentationResult:
    """mIoU etc. of `segmenter` on `dataset` (first `max_images`, 0 = all).

    Images are processed `images_per_step` at a time so equal-sized windows of different images share a forward
    pass (default: eval.batch_size whole images, or half as many in slide mode, where each image already gives
    two or more windows and a [C+1, H, W] score map each). `on_image(item, prediction, image_mIoU)` sees every
    image (progress bars, saving predictions).
    """
    check_classes(segmenter, dataset)
    meter = SegmentationMeter(dataset.class_names, dataset.ignore_index)
    cfg = segmenter.cfg
    step = images_per_step or (cfg.batch_size if cfg.mode == "whole" else max(1, cfg.batch_size // 2))
    for items in _chunks(dataset, step, max_images):
        preds = segmenter.predict([it.image for it in items])
        for it, pred in zip(items, preds):
            score = meter.update(pred, it.mask, it.id)
            if on_image is not None:
                on_image(it, pred, score)
    return meter.result(bootstrap=bootstrap, seed=seed)


def oracle_labels(group_map: np.ndarray, label: np.ndarray, ignore_index: int = 255) -> np.ndarray:
    """Each group takes the ground-truth class it overlaps most (ignored pixels do not vote): the paper's
    "oracle class labels" upper bound, which scores the grouping alone. Groups over ignore only -> 0."""
    group_map = np.asarray(group_map, dtype=np.int64)
    label = np.asarray(label, dtype=np.int64)
    out = np.zeros_like(label)
    valid = label != ignore_index
    for g in np.unique(group_map):
        sel = group_map == g
        votes = label[sel & valid]
        out[sel] = np.bincount(votes).argmax() if votes.size else 0
    return out


def evaluate_group_oracle(segmenter: ZeroShotSegmenter, dataset: SegDataset, *, max_images: int = 0,
                          stage: int = -1, bootstrap: int = 0, seed: int = 0) -> SegmentationResult:
    """mIoU when each final-stage group (whole-image pass) is labelled by the ground truth."""
    check_classes(segmenter, dataset)
    meter = SegmentationMeter(dataset.class_names, dataset.ignore_index)
    for items in _chunks(dataset, segmenter.cfg.batch_size, max_images):
        for it, maps in zip(items, segmenter.group_maps_batch([it.image for it in items])):
            meter.update(oracle_labels(maps[stage], it.mask, dataset.ignore_index), it.mask, it.id)
    return meter.result(bootstrap=bootstrap, seed=seed)


@dataclass
class QualitativeSample:
    id: str
    image: np.ndarray  # [H, W, 3] uint8
    label: np.ndarray | None  # [H, W] ground truth (None for user photos)
    stage_groups: list[np.ndarray]  # per stage [H, W] group index
    prediction: np.ndarray  # [H, W] class index (0 = background)


def collect_qualitative(segmenter: ZeroShotSegmenter, dataset: SegDataset,
                        indices: Sequence[int]) -> list[QualitativeSample]:
    """Everything the report's qualitative grid shows, for the given dataset indices."""
    out = []
    for i in indices:
        it = dataset[i]
        pred = segmenter.predict([it.image])[0]
        out.append(QualitativeSample(it.id, it.image, it.mask, segmenter.group_maps(it.image), pred))
    return out
