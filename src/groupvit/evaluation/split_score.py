"""One split's score as the CLI, the workflow and the study harness report it: the segmenter's mIoU, the
objects-only mIoU, and the two references a reader needs beside them (the all-background floor and the
oracle-labelled grouping, which scores the groups alone)."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from groupvit.evaluation.collector import SegmentationMeter, SegmentationResult
from groupvit.evaluation.datasets.base import SegDataset
from groupvit.evaluation.evaluate import evaluate_group_oracle, evaluate_segmentation
from groupvit.evaluation.readout import CLASS_GATES
from groupvit.evaluation.segmenter import ZeroShotSegmenter


def objects_miou(result: SegmentationResult) -> float | None:
    """Mean IoU over the object classes present in the split (background excluded); None when there are none."""
    objects = [v for v in result.iou[1:] if not math.isnan(v)]
    return sum(objects) / len(objects) if objects else None


@dataclass
class SplitScore:
    result: SegmentationResult  # the segmenter's predictions
    floor: SegmentationResult  # predicting background everywhere
    oracle: SegmentationResult  # each final-stage group labelled with the ground-truth class it overlaps most

    @property
    def objects_miou(self) -> float | None:
        return objects_miou(self.result)


def score_split(segmenter: ZeroShotSegmenter, dataset: SegDataset, *, max_images: int = 0, bootstrap: int = 0,
                seed: int = 0) -> SplitScore:
    """Score `segmenter` on the first `max_images` of `dataset` (0 = all); `bootstrap` resamples images for the
    mIoU's confidence interval."""
    floor = SegmentationMeter(dataset.class_names, dataset.ignore_index)
    result = evaluate_segmentation(
        segmenter, dataset, max_images=max_images, bootstrap=bootstrap, seed=seed,
        on_image=lambda item, pred, score: floor.update(np.zeros_like(item.mask), item.mask, item.id),
    )
    oracle = evaluate_group_oracle(segmenter, dataset, max_images=max_images)
    return SplitScore(result=result, floor=floor.result(), oracle=oracle)


def gated_mious(segmenter: ZeroShotSegmenter, dataset: SegDataset, *, max_images: int = 0,
                gates: tuple[int, ...] = CLASS_GATES) -> dict[str, float]:
    """{str(k): mIoU} of the same segmenter (same groups, same grouper object, so a clustering baseline reuses its
    clusters) with only each image's top-k classes allowed to name its segments."""
    out = {}
    for k in gates:
        gated = ZeroShotSegmenter(segmenter.model, segmenter.class_names,
                                  dataclasses.replace(segmenter.cfg, topk_classes=k), bg_thresh=segmenter.bg_thresh,
                                  grouper=segmenter.grouper, mean=segmenter.mean, std=segmenter.std,
                                  patch_size=segmenter.patch_size)
        out[str(k)] = evaluate_segmentation(gated, dataset, max_images=max_images).miou
    return out
