"""Machine-readable results of `groupvit segment`: a palette PNG mask and a JSON record per image.

The mask holds one label per input pixel (0 = background, i = the i-th class), with the overlay's colours as its
palette, so any image viewer shows it and any program reads the labels with PIL. The JSON names the labels, the
classes found with their pixel fractions, and the segments of the last grouping stage with their class scores.
"""
from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from groupvit.atomic import atomic_write_bytes
from groupvit.evaluation.grouping import Groups
from groupvit.evaluation.scoring import (
    group_class_probs, pixel_class_scores, suppress_background_groups, upsampled_argmax,
)

# A palette PNG has 256 entries; 255 is the datasets' "ignore" value, never a prediction.
MAX_LABELS = 255


def write_mask(path: str | os.PathLike, labels: np.ndarray, palette: np.ndarray) -> Path:
    """[H, W] labels -> palette ('P' mode) PNG at the same size; palette[i] is label i's colour."""
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= MAX_LABELS):
        raise ValueError(f"mask labels must be 0..{MAX_LABELS - 1}, got {labels.min()}..{labels.max()}")
    im = Image.fromarray(labels.astype(np.uint8), mode="L")
    colours = np.zeros((256, 3), np.uint8)
    colours[: min(256, len(palette))] = palette[:256]
    im.putpalette(colours.reshape(-1).tolist())  # an 'L' image becomes 'P'
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return atomic_write_bytes(path, buf.getvalue())


def class_fractions(labels: np.ndarray, names: Sequence[str]) -> list[dict]:
    """The labels present in a mask, each with its name and the fraction of the image's pixels it covers."""
    values, counts = np.unique(np.asarray(labels), return_counts=True)
    total = max(1, int(np.asarray(labels).size))
    return [{"label": int(v), "name": names[int(v)], "pixel_fraction": round(int(c) / total, 6)}
            for v, c in zip(values, counts)]


@torch.no_grad()
def group_records(segmenter, groups: Groups, resized: tuple[int, int], size: tuple[int, int]) -> list[dict]:
    """The final segments of one whole-image pass that own pixels: pixel fraction at the input size, each class's
    score, whether a background phrase claimed it, and the label the protocol's rules give it (score_groups')."""
    probs = group_class_probs(groups.group_embeds, groups.image_embed, segmenter.text_embeds, segmenter.logit_scale,
                              segmenter.cfg.topk_classes)  # [1, G, C]
    kept = probs
    if segmenter.background_embeds is not None:
        kept = suppress_background_groups(probs, groups.group_embeds, segmenter.text_embeds,
                                          segmenter.background_embeds)
    g = probs.shape[1]
    valid = groups.group_valid.to(probs.device) if groups.group_valid is not None else None
    own = torch.arange(g, device=probs.device).view(1, 1, g)  # "pixel" k belongs to group k
    group_label = pixel_class_scores(own, kept, segmenter.bg_thresh, valid).argmax(dim=1)[0, 0].cpu()
    owner = _owner_map(groups.pixel_to_group, resized, segmenter.patch_size, size)
    counts = np.bincount(owner.reshape(-1), minlength=g)
    total = max(1, owner.size)
    names = segmenter.labels
    out = []
    for k in range(g):
        if (valid is not None and not bool(valid[0, k])) or counts[k] == 0:
            continue  # padding, or a segment that owns no pixel
        label = int(group_label[k])
        out.append({
            "group": k, "pixel_fraction": round(int(counts[k]) / total, 6), "label": label, "name": names[label],
            "background_phrase": bool(kept[0, k].amax() == 0) and bool(probs[0, k].amax() > 0),
            "scores": {n: round(float(v), 6) for n, v in zip(segmenter.class_names, probs[0, k].cpu().tolist())},
        })
    return out


def _owner_map(pixel_to_group: torch.Tensor, resized: tuple[int, int], patch_size: int,
               size: tuple[int, int]) -> np.ndarray:
    """[H, W] owning group of each input pixel, as segmenter.group_maps computes its panels: arg-max on the padded
    token grid upsampled to the padded crop, cropped to the resized image, nearest-resized to the input."""
    from groupvit.evaluation.windows import padded_size

    padded = padded_size(*resized, patch_size)
    idx = upsampled_argmax(pixel_to_group, padded)[0, : resized[0], : resized[1]]
    idx = F.interpolate(idx[None, None].float(), size=size, mode="nearest")[0, 0]
    return idx.long().cpu().numpy()
