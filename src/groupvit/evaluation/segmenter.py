"""Zero-shot semantic segmentation with GroupViT (or any `Grouper`), following the official protocol.

Per image: resize the short side (eval.resize_short, long side capped at eval.resize_long_max), cut sliding
windows (eval.window / eval.stride, mmseg's grid) or take the whole image, pad each window to a whole number of
patches, group it, name its groups (scoring.py), average the class score maps where windows overlap, resize the
scores back to the input size and arg-max. Windows of equal size are batched across images (eval.batch_size).
Background is class 0; the text queries are the foreground class names only.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from groupvit.evaluation.config import EvalConfig
from groupvit.evaluation.grouping import Grouper, Groups, ModelGrouper, infer_patch_size
from groupvit.evaluation.preprocess import IMAGENET_MEAN, IMAGENET_STD, ImageLike, normalize, to_float_chw
from groupvit.evaluation.scoring import (
    group_class_probs, pixel_class_scores, suppress_background_groups, upsampled_argmax,
)
from groupvit.evaluation.text import class_text_embeddings, logit_scale_of, model_device
from groupvit.evaluation.windows import pad_to, padded_size, resize_image, resized_shape, sliding_windows

BACKGROUND = "background"


def resolve_bg_thresh(cfg: EvalConfig, dataset: str | None) -> float:
    """eval.bg_thresh_by_dataset[dataset] when set, else eval.bg_thresh."""
    if dataset is not None and dataset in (cfg.bg_thresh_by_dataset or {}):
        return float(cfg.bg_thresh_by_dataset[dataset])
    return float(cfg.bg_thresh)


class ZeroShotSegmenter:
    """class names + model + EvalConfig -> per-image [C+1, H, W] scores and [H, W] label maps.

    Args:
        model: implements the model contract (tokenizer, encode_text, and encode_image_groups unless a
            `grouper` is given). It is switched to eval mode: the Gumbel noise must be off.
        class_names: foreground names used in the prompts; a leading "background" is dropped (dataset class
            lists carry it at index 0, and background is never a text query).
        cfg: the protocol (templates, assignment, topk_classes, thresholds, resize, mode, window, stride).
        dataset: key into cfg.bg_thresh_by_dataset; `bg_thresh` overrides both.
        grouper: where groups come from (default: the model's own, soft or hard per cfg.assignment).
        mean, std: the normalisation the model was trained with (data.augment.mean/std).
        patch_size: token stride for padding windows; inferred from the model when None.
    """

    def __init__(self, model: nn.Module, class_names: Sequence[str], cfg: EvalConfig, *,
                 dataset: str | None = None, bg_thresh: float | None = None, grouper: Grouper | None = None,
                 mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                 patch_size: int | None = None) -> None:
        names = list(class_names)
        if names and names[0].strip().lower() == BACKGROUND:
            names = names[1:]
        if not names:
            raise ValueError("no foreground class names to segment")
        clashing = sorted({p.strip().lower() for p in cfg.background_prompts} & {n.strip().lower() for n in names})
        if clashing:
            raise ValueError(f"eval.background_prompts {clashing} are also class names of the dataset being scored: "
                             "a class named as background could never be predicted; remove them from the prompts")
        if cfg.mode not in ("slide", "whole"):
            raise ValueError(f"eval.mode must be 'slide' or 'whole', got {cfg.mode!r}")
        self.model = model.eval()
        self.cfg = cfg
        self.class_names = names
        self.device = model_device(model)
        self.grouper: Grouper = (
            grouper if grouper is not None else ModelGrouper(model, cfg.assignment, cfg.segment_embeds)
        )
        self.bg_thresh = float(bg_thresh) if bg_thresh is not None else resolve_bg_thresh(cfg, dataset)
        self.mean, self.std = tuple(mean), tuple(std)
        self.patch_size = int(patch_size) if patch_size else infer_patch_size(model)
        self.text_embeds = class_text_embeddings(model, names, cfg.templates)
        self.background_embeds = (
            class_text_embeddings(model, list(cfg.background_prompts), cfg.templates) if cfg.background_prompts
            else None
        )
        self.logit_scale = logit_scale_of(model)

    @property
    def num_classes(self) -> int:
        """Foreground classes + background."""
        return len(self.class_names) + 1

    @property
    def labels(self) -> list[str]:
        """Names of the output channels / label values (0 = background)."""
        return [BACKGROUND, *self.class_names]

    def protocol(self) -> dict:
        """The settings that decide the numbers, for the metrics JSON (resolved values, not just the config)."""
        c = self.cfg
        return {
            "grouper": getattr(self.grouper, "name", type(self.grouper).__name__),
            "assignment": c.assignment, "segment_embeds": getattr(self.grouper, "embeds", None),
            "templates": list(c.templates), "prompt_names": list(self.class_names),
            "topk_classes": c.topk_classes, "bg_thresh": self.bg_thresh,
            "background_prompts": list(c.background_prompts), "logit_scale": self.logit_scale,
            "resize_short": c.resize_short, "resize_long_max": c.resize_long_max, "mode": c.mode,
            "window": c.window if c.mode == "slide" else None, "stride": c.stride if c.mode == "slide" else None,
            "patch_size": self.patch_size, "mean": list(self.mean), "std": list(self.std),
            "metric": "mmseg mIoU: summed confusion over the split, ignore 255, nanmean over classes",
        }

    # ---------------------------------------------------------------- one batch of equally-sized crops
    @torch.no_grad()
    def score_crops(self, crops: torch.Tensor) -> torch.Tensor:
        """[B, 3, h, w] normalised crops (h, w multiples of the patch size) -> [B, C+1, h, w] scores."""
        groups = self.grouper(crops)
        return self.score_groups(groups, tuple(crops.shape[-2:]))

    def score_groups(self, groups: Groups, size: tuple[int, int]) -> torch.Tensor:
        probs = group_class_probs(groups.group_embeds, groups.image_embed, self.text_embeds, self.logit_scale,
                                  self.cfg.topk_classes)
        if self.background_embeds is not None:
            probs = suppress_background_groups(probs, groups.group_embeds, self.text_embeds, self.background_embeds)
        index = upsampled_argmax(groups.pixel_to_group, size)
        valid = groups.group_valid.to(probs.device) if groups.group_valid is not None else None
        return pixel_class_scores(index.to(probs.device), probs, self.bg_thresh, valid)

    # ---------------------------------------------------------------- whole images
    def prepare(self, image: ImageLike) -> tuple[torch.Tensor, tuple[int, int]]:
        """Normalised, resized [3, H', W'] on the model's device, and the original (H, W)."""
        x = to_float_chw(image)
        size = (int(x.shape[-2]), int(x.shape[-1]))
        x = normalize(x.to(self.device), self.mean, self.std)
        target = resized_shape(*size, self.cfg.resize_short, self.cfg.resize_long_max)
        return resize_image(x, target), size

    def windows_of(self, height: int, width: int) -> list[tuple[int, int, int, int]]:
        if self.cfg.mode == "whole":
            return [(0, height, 0, width)]
        return sliding_windows(height, width, self.cfg.window, self.cfg.stride)

    @torch.no_grad()
    def predict_scores(self, images: Sequence[ImageLike]) -> list[torch.Tensor]:
        """Per image [C+1, H, W] float scores on the CPU, at the input image's size."""
        prepared = [self.prepare(im) for im in images]
        sums = [torch.zeros(self.num_classes, *x.shape[-2:], device=self.device) for x, _ in prepared]
        counts = [torch.zeros(1, *x.shape[-2:], device=self.device) for x, _ in prepared]
        jobs: dict[tuple[int, int], list[tuple[int, tuple[int, int, int, int]]]] = {}
        for i, (x, _) in enumerate(prepared):
            for win in self.windows_of(*x.shape[-2:]):
                key = padded_size(win[1] - win[0], win[3] - win[2], self.patch_size)
                jobs.setdefault(key, []).append((i, win))
        batch = max(1, self.cfg.batch_size)
        for size, items in jobs.items():
            for start in range(0, len(items), batch):
                chunk = items[start:start + batch]
                crops = torch.stack([pad_to(prepared[i][0][:, y1:y2, x1:x2], size)
                                     for i, (y1, y2, x1, x2) in chunk])
                scores = self.score_crops(crops)
                for (i, (y1, y2, x1, x2)), s in zip(chunk, scores):
                    sums[i][:, y1:y2, x1:x2] += s[:, : y2 - y1, : x2 - x1]
                    counts[i][:, y1:y2, x1:x2] += 1
        out = []
        for (_, size), s, c in zip(prepared, sums, counts):
            avg = s / c.clamp(min=1)
            if tuple(avg.shape[-2:]) != size:
                avg = F.interpolate(avg.unsqueeze(0), size=size, mode="bilinear", align_corners=False)[0]
            out.append(avg.cpu())
        return out

    def predict(self, images: Sequence[ImageLike]) -> list[np.ndarray]:
        """Per image [H, W] int64 label map (0 = background, i = class_names[i - 1])."""
        return [s.argmax(dim=0).numpy().astype(np.int64) for s in self.predict_scores(images)]

    def whole_image_batches(self, images: Sequence[ImageLike]) -> Iterator[tuple[list[int], torch.Tensor, list]]:
        """The whole-image pass's inputs: each image resized and padded to the patch grid, stacked with the others
        of its padded size, eval.batch_size at a time. Yields (image indices, [B, 3, H', W'], per image its
        resized (h, w) before padding and its input (H, W))."""
        prepared = [self.prepare(im) for im in images]
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, (x, _) in enumerate(prepared):
            by_size.setdefault(padded_size(*x.shape[-2:], self.patch_size), []).append(i)
        batch = max(1, self.cfg.batch_size)
        for padded, indices in by_size.items():
            for start in range(0, len(indices), batch):
                chunk = indices[start:start + batch]
                yield (chunk, torch.stack([pad_to(prepared[i][0], padded) for i in chunk]),
                       [(tuple(prepared[i][0].shape[-2:]), prepared[i][1]) for i in chunk])

    def group_maps(self, image: ImageLike) -> list[np.ndarray]:
        """Per grouping stage, the [H, W] arg-max group index at the input size (whole-image pass at the
        resized scale: one consistent set of groups for figures). Baselines give their one clustering."""
        return self.group_maps_batch([image])[0]

    @torch.no_grad()
    def group_maps_batch(self, images: Sequence[ImageLike]) -> list[list[np.ndarray]]:
        """`group_maps` of several images, with one forward pass per batch of equally-sized images."""
        out: list[list[np.ndarray]] = [[] for _ in images]
        for indices, x, sizes in self.whole_image_batches(images):
            groups = self.grouper(x)
            for m in groups.stage_maps or [groups.pixel_to_group]:
                index = upsampled_argmax(m, tuple(x.shape[-2:]))
                for row, i, ((h, w), size) in zip(index, indices, sizes):
                    idx = F.interpolate(row[None, None, :h, :w].float(), size=size, mode="nearest")[0, 0]
                    out[i].append(idx.long().cpu().numpy())
        return out
