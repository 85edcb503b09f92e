"""Score the supervised reference like the zero-shot models: per-pixel argmax of its logits, the same metrics
(mIoU, objects-only mIoU, per-class IoU, the all-background floor); no groups, so no group-oracle score."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from groupvit.evaluation.collector import SegmentationMeter, SegmentationResult
from groupvit.evaluation.config import EvalConfig
from groupvit.evaluation.datasets.base import SegDataset
from groupvit.evaluation.evaluate import evaluate_segmentation
from groupvit.evaluation.preprocess import ImageLike, normalize, to_float_chw
from groupvit.evaluation.windows import pad_to, padded_size, resize_image, resized_shape
from groupvit.supervised.model import SupervisedSegmenterModel

BACKGROUND = "background"


class SupervisedSegmenter:
    """The segmenter interface evaluate_segmentation needs (cfg, num_classes, predict, protocol): one whole-image
    pass at the protocol's resize, logits resized back to the image, argmax per pixel."""

    def __init__(self, model: SupervisedSegmenterModel, class_names: Sequence[str], cfg: EvalConfig, *,
                 mean: Sequence[float], std: Sequence[float]) -> None:
        names = list(class_names)
        if names and names[0].strip().lower() == BACKGROUND:
            names = names[1:]
        if names != model.class_names:
            raise ValueError(f"the supervised model was trained on classes {model.class_names}, the dataset has "
                             f"{names}: it can only score the world it was trained on")
        self.model = model.eval()
        self.cfg = cfg
        self.class_names = names
        self.device = next(model.parameters()).device
        self.mean, self.std = tuple(mean), tuple(std)

    @property
    def num_classes(self) -> int:
        return len(self.class_names) + 1

    def protocol(self) -> dict:
        c = self.cfg
        return {
            "grouper": "supervised", "readout": "per-pixel argmax of the token classifier's logits (bilinear)",
            "prompt_names": list(self.class_names), "resize_short": c.resize_short,
            "resize_long_max": c.resize_long_max, "mode": "whole", "patch_size": self.model.patch_size,
            "mean": list(self.mean), "std": list(self.std),
            "metric": "mmseg mIoU: summed confusion over the split, ignore 255, nanmean over classes",
        }

    @torch.no_grad()
    def predict(self, images: Sequence[ImageLike]) -> list[np.ndarray]:
        """Per image [H, W] int64 label map (0 = background, i = class_names[i - 1])."""
        out = []
        for image in images:
            x = normalize(to_float_chw(image).to(self.device), self.mean, self.std)
            size = (int(x.shape[-2]), int(x.shape[-1]))
            x = resize_image(x, resized_shape(*size, self.cfg.resize_short, self.cfg.resize_long_max))
            height, width = x.shape[-2:]
            logits = self.model(pad_to(x, padded_size(height, width, self.model.patch_size))[None])
            logits = F.interpolate(logits[..., :height, :width], size=size, mode="bilinear", align_corners=False)
            out.append(logits[0].argmax(dim=0).cpu().numpy().astype(np.int64))
        return out


def score_supervised(segmenter: SupervisedSegmenter, dataset: SegDataset, *, max_images: int = 0,
                     bootstrap: int = 0, seed: int = 0) -> tuple[SegmentationResult, SegmentationResult]:
    """(the model's result, the all-background floor) on the first `max_images` of `dataset` (0 = all)."""
    floor = SegmentationMeter(dataset.class_names, dataset.ignore_index)
    result = evaluate_segmentation(
        segmenter, dataset, max_images=max_images, bootstrap=bootstrap, seed=seed,
        on_image=lambda item, pred, score: floor.update(np.zeros_like(item.mask), item.mask, item.id),
    )
    return result, floor.result()
