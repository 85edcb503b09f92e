"""How many of its groups each GroupViT readout uses: per stage, the mean number of groups per image that the
arg-max of the soft and of the hard pixel-to-group maps gives at least MIN_SHARE of the pixels, and how peaked the
soft maps are (mean over pixels of the largest assignment probability; 1 / groups when uniform). A near-uniform
soft map makes its arg-max pick about one group per image, which is why a soft readout can score near the floor."""
from __future__ import annotations

import torch

from groupvit.evaluation.datasets.base import SegDataset
from groupvit.evaluation.grouping import output_field
from groupvit.evaluation.readout import MIN_SHARE
from groupvit.evaluation.scoring import upsampled_argmax
from groupvit.evaluation.segmenter import ZeroShotSegmenter

MAX_IMAGES = 500  # enough for a mean to one decimal; a real split's remaining images add time, not information
READOUT_MAPS = {"soft": "stage_assignments", "hard": "stage_assignments_hard"}


def groups_in_use(index: torch.Tensor, num_groups: int, min_share: float = MIN_SHARE) -> int:
    """[H, W] owner index -> the number of groups owning at least `min_share` of the pixels."""
    shares = torch.bincount(index.flatten(), minlength=num_groups).float() / index.numel()
    return int((shares >= min_share).sum())


@torch.no_grad()
def readout_stats(segmenter: ZeroShotSegmenter, dataset: SegDataset, max_images: int = 0) -> dict:
    """Whole-image pass over the first `max_images` (0 = all, at most MAX_IMAGES) of `dataset` (the segmenter's
    resize, padded to the patch grid) with the model's own groups; per stage: groups per image for both readouts,
    the number of groups and the soft maps' peak."""
    count = min(len(dataset), max_images if max_images > 0 else len(dataset), MAX_IMAGES)
    used: dict[str, list[list[int]]] = {name: [] for name in READOUT_MAPS}
    peaks, sizes = [], []
    batch = max(1, segmenter.cfg.batch_size)
    for start in range(0, count, batch):  # a batch of images in memory at a time
        images = [dataset[i].image for i in range(start, min(count, start + batch))]
        for _, x, shapes in segmenter.whole_image_batches(images):
            out = segmenter.model.encode_image_groups(x)
            for name, field in READOUT_MAPS.items():
                maps = output_field(out, field)
                owners = [upsampled_argmax(m, tuple(x.shape[-2:])) for m in maps]
                for b, ((h, w), _) in enumerate(shapes):
                    used[name].append([groups_in_use(o[b, :h, :w], m.shape[1]) for o, m in zip(owners, maps)])
            soft = output_field(out, READOUT_MAPS["soft"])
            peaks += [[float(m[b].float().max(dim=0).values.mean()) for m in soft] for b in range(len(shapes))]
            sizes = [int(m.shape[1]) for m in soft]
    return {
        "images": count, "min_share": MIN_SHARE, "groups": sizes,
        "groups_per_image": {name: _column_means(rows) for name, rows in used.items()},
        "soft_max_prob": _column_means(peaks),
    }


def _column_means(rows: list[list[float]]) -> list[float]:
    """Per stage, the mean over images (rounded: a summary, not a measurement to compare bit for bit)."""
    return [round(sum(column) / len(column), 3) for column in zip(*rows)]
