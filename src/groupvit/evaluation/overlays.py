"""`groupvit segment`: run a model on your own images with your own class names; save what it found.

Per image, beside each other in the output folder:
  <stem>_segment.png  the overlay: the image, the predicted classes over it with a legend, and the group maps of
                      each stage side by side, so you can see both what was named and how the image was grouped;
  <stem>_mask.png     the prediction as a palette PNG at the input's size (0 = background, i = the i-th class);
  <stem>_segment.json the labels, the classes found with their pixel fractions, the final segments with their class
                      scores, the protocol and any conversion of the input.
Images that cannot be read or are too small are refused with the reason; the others are still processed.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from torch import nn  # noqa: E402

from groupvit.atomic import atomic_write_json  # noqa: E402
from groupvit.evaluation.config import EvalConfig  # noqa: E402
from groupvit.evaluation.figures import class_legend, group_overlay, label_overlay  # noqa: E402
from groupvit.evaluation.grouping import Grouper, Groups  # noqa: E402
from groupvit.evaluation.palette import class_palette  # noqa: E402
from groupvit.evaluation.preprocess import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from groupvit.evaluation.segment_outputs import (  # noqa: E402
    MAX_LABELS, class_fractions, group_records, write_mask,
)
from groupvit.evaluation.segmenter import ZeroShotSegmenter  # noqa: E402
from groupvit.evaluation.user_inputs import ImageRefused, UserImage, check_min_size, read_user_image  # noqa: E402
from groupvit.evaluation.windows import resized_shape  # noqa: E402

log = logging.getLogger(__name__)


@dataclass
class SegmentedImage:
    """One processed input: its decoded image, label map at the input size and the files written for it."""

    image: UserImage
    labels: np.ndarray
    classes: list[dict]
    overlay: Path
    mask: Path
    record: Path


@dataclass
class SegmentRun:
    images: list[SegmentedImage] = field(default_factory=list)
    refused: list[ImageRefused] = field(default_factory=list)


class _KeepLast:
    """A grouper that remembers its last output, so the whole-image pass behind the group panels also gives the
    segments' embeddings for the JSON without grouping the image again."""

    def __init__(self, inner: Grouper) -> None:
        self.inner = inner
        self.name = getattr(inner, "name", type(inner).__name__)
        self.last: Groups | None = None

    def __call__(self, images):
        self.last = self.inner(images)
        return self.last


def _unique_stem(path: str | os.PathLike, taken: set[str]) -> str:
    """The file's stem, numbered when an earlier input of the run had the same one (a/x.jpg and b/x.png)."""
    stem = Path(path).stem or "image"
    name, n = stem, 2
    while name in taken:
        name, n = f"{stem}-{n}", n + 1
    taken.add(name)
    return name


def _draw_overlay(target: Path, image: np.ndarray, pred: np.ndarray, stages: Sequence[np.ndarray],
                  classes: Sequence[dict], labels: Sequence[str], palette: np.ndarray, title: str) -> Path:
    panels = [("input", image), ("prediction", label_overlay(image, pred, palette))]
    panels += [(f"stage {k + 1} groups ({len(np.unique(g))} used)", group_overlay(image, g))
               for k, g in enumerate(stages)]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.6), squeeze=False)
    for ax, (name, panel) in zip(axes[0], panels):
        ax.imshow(panel, interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    named = list(labels)  # legend entries show each class's share of the image
    for c in classes:
        named[c["label"]] = f"{c['name']} {100 * c['pixel_fraction']:.0f}%"
    handles = class_legend([c["label"] for c in classes], named, palette)
    axes[0][1].legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.02), fontsize=7,
                      ncol=min(3, max(1, len(handles))), frameon=False)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    tmp = target.with_name(f".{target.stem}.tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(target)
    return target


def segment_files(model: nn.Module, image_paths: Sequence[str | os.PathLike], class_names: Sequence[str],
                  out_dir: str | os.PathLike, cfg: EvalConfig, *, bg_thresh: float | None = None,
                  grouper: Grouper | None = None, mean: Sequence[float] = IMAGENET_MEAN,
                  std: Sequence[float] = IMAGENET_STD, checkpoint: str | None = None,
                  protocol: dict[str, Any] | None = None) -> SegmentRun:
    """Segment every image with `cfg`'s geometry (resize, windows) and write its overlay, mask and JSON.

    class_names are the foreground classes (background is implicit). bg_thresh defaults to eval.bg_thresh.
    `protocol` adds entries to each JSON's protocol (e.g. where the settings came from).
    """
    if len(class_names) >= MAX_LABELS:
        raise ValueError(f"{len(class_names)} classes: a mask holds at most {MAX_LABELS - 1} besides background")
    segmenter = ZeroShotSegmenter(model, class_names, cfg, bg_thresh=bg_thresh, grouper=grouper, mean=mean, std=std)
    keep = _KeepLast(segmenter.grouper)
    segmenter.grouper = keep
    labels = segmenter.labels
    palette = class_palette(256)
    settings = {k: v for k, v in segmenter.protocol().items() if k != "metric"}
    settings.update(protocol or {})
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run, stems = SegmentRun(), set()
    for path in image_paths:
        try:
            image = read_user_image(path)
            check_min_size(image, segmenter.patch_size)
        except ImageRefused as err:
            run.refused.append(err)
            continue
        rgb = image.rgb
        size = rgb.shape[:2]
        resized = resized_shape(*size, cfg.resize_short, cfg.resize_long_max)
        windows = segmenter.windows_of(*resized)
        pred = segmenter.predict([rgb])[0]
        stages = segmenter.group_maps(rgb)  # the whole-image pass; keep.last holds its groups
        groups = group_records(segmenter, keep.last, resized, size)
        classes = class_fractions(pred, labels)
        stem = _unique_stem(path, stems)
        overlay, mask, record = (out_dir / f"{stem}_segment.png", out_dir / f"{stem}_mask.png",
                                 out_dir / f"{stem}_segment.json")
        title = (f"{size[1]}x{size[0]} px seen at {resized[1]}x{resized[0]} in {len(windows)} "
                 f"window{'s' * (len(windows) != 1)}")
        _draw_overlay(overlay, rgb, pred, stages, classes, labels, palette, title)
        write_mask(mask, pred, palette)
        atomic_write_json({
            "image": str(path), "checkpoint": checkpoint, "size": {"height": size[0], "width": size[1]},
            "input": {"mode": image.mode, "conversions": image.notes},
            "labels": labels, "mask": mask.name, "overlay": overlay.name,
            "classes": classes,
            "groups": {
                "from": f"the last grouping stage of one whole-image pass at {resized[1]}x{resized[0]} px (the "
                        "overlay's group panels); the mask averages the windows' own groups",
                "segments": groups,
            },
            "protocol": {**settings, "resized": {"height": resized[0], "width": resized[1]},
                         "windows": [list(w) for w in windows]},
        }, record)
        run.images.append(SegmentedImage(image, pred, classes, overlay, mask, record))
    return run


def segment_images(model: nn.Module, image_paths: Sequence[str | os.PathLike], class_names: Sequence[str],
                   out_dir: str | os.PathLike, cfg: EvalConfig, **kwargs: Any) -> list[Path]:
    """segment_files, returning the overlay paths; refused images are logged with their reason."""
    run = segment_files(model, image_paths, class_names, out_dir, cfg, **kwargs)
    for err in run.refused:
        log.warning("skipped %s", err)
    return [s.overlay for s in run.images]
