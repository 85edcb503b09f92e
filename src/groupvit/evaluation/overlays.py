"""`groupvit segment`: run a model on your own photos with your own class names and save overlays.

One PNG per photo: the photo, the predicted classes over it with a legend, and the group maps of each stage side
by side, so you can see both what was named and how the image was grouped.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from torch import nn  # noqa: E402

from groupvit.evaluation.config import EvalConfig  # noqa: E402
from groupvit.evaluation.figures import class_legend, group_overlay, label_overlay  # noqa: E402
from groupvit.evaluation.grouping import Grouper  # noqa: E402
from groupvit.evaluation.palette import class_palette  # noqa: E402
from groupvit.evaluation.preprocess import IMAGENET_MEAN, IMAGENET_STD, load_rgb  # noqa: E402
from groupvit.evaluation.segmenter import ZeroShotSegmenter  # noqa: E402


def segment_images(model: nn.Module, image_paths: Sequence[str | os.PathLike], class_names: Sequence[str],
                   out_dir: str | os.PathLike, cfg: EvalConfig, *, bg_thresh: float | None = None,
                   grouper: Grouper | None = None, mean: Sequence[float] = IMAGENET_MEAN,
                   std: Sequence[float] = IMAGENET_STD) -> list[Path]:
    """Write out_dir/<stem>_segment.png for every image; returns the written paths.

    class_names are the foreground classes to look for (background is implicit). bg_thresh defaults to
    eval.bg_thresh (there is no dataset to pick a per-dataset value from).
    """
    segmenter = ZeroShotSegmenter(model, class_names, cfg, bg_thresh=bg_thresh, grouper=grouper, mean=mean, std=std)
    labels = segmenter.labels
    palette = class_palette(max(256, len(labels)))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in image_paths:
        image = load_rgb(path)
        pred = segmenter.predict([image])[0]
        stages = segmenter.group_maps(image)
        panels = [("input", image), ("prediction", label_overlay(image, pred, palette))]
        panels += [(f"stage {k + 1} groups ({len(np.unique(g))} used)", group_overlay(image, g))
                   for k, g in enumerate(stages)]
        fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.6), squeeze=False)
        for ax, (name, panel) in zip(axes[0], panels):
            ax.imshow(panel, interpolation="nearest")
            ax.set_title(name, fontsize=9)
            ax.axis("off")
        handles = class_legend([int(v) for v in np.unique(pred)], labels, palette)
        axes[0][1].legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.02), fontsize=7,
                          ncol=min(3, max(1, len(handles))), frameon=False)
        fig.tight_layout()
        target = out_dir / f"{Path(path).stem}_segment.png"
        tmp = target.with_name(f".{target.stem}.tmp.png")
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
        plt.close(fig)
        tmp.replace(target)
        written.append(target)
    return written
