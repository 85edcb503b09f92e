"""Report figures: qualitative grids (image, ground truth, groups per stage, prediction) and per-class IoU plots.

Headless (Agg backend); every function writes one file and returns its path.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from groupvit.evaluation.evaluate import QualitativeSample  # noqa: E402
from groupvit.evaluation.palette import blend, class_palette, colorize, group_palette  # noqa: E402

IGNORE_INDEX = 255


def _save(fig: plt.Figure, path: str | os.PathLike, dpi: int = 120) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)
    return path


def class_legend(labels: Sequence[int], class_names: Sequence[str], palette: np.ndarray) -> list[Patch]:
    return [Patch(facecolor=palette[k] / 255.0, edgecolor="k", linewidth=0.3, label=class_names[k])
            for k in labels if 0 <= k < len(class_names)]


def greyscale(image: np.ndarray) -> np.ndarray:
    """RGB -> grey RGB, so an overlay's hue is the label colour alone and matches the legend."""
    grey = (np.asarray(image, np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def label_overlay(image: np.ndarray, label: np.ndarray, palette: np.ndarray, alpha: float = 0.7) -> np.ndarray:
    """Class colours over the greyscale image; ignore pixels stay as the (grey) image."""
    return blend(greyscale(image), colorize(label, palette), alpha, where=np.asarray(label) != IGNORE_INDEX)


def group_overlay(image: np.ndarray, groups: np.ndarray, alpha: float = 0.7) -> np.ndarray:
    """Group colours over the greyscale image (a group's colour is its index's; groups are not classes)."""
    groups = np.asarray(groups)
    return blend(greyscale(image), colorize(groups, group_palette(int(groups.max()) + 1)), alpha)


def qualitative_grid(samples: Sequence[QualitativeSample], class_names: Sequence[str],
                     path: str | os.PathLike, title: str | None = None, cell: float = 2.2) -> Path:
    """One row per sample: image | ground truth | groups of each stage | prediction; one class legend below."""
    if not samples:
        raise ValueError("no samples for the qualitative grid")
    palette = class_palette(max(256, len(class_names)))
    stages = max(len(s.stage_groups) for s in samples)
    has_gt = any(s.label is not None for s in samples)
    headers = ["image"] + (["ground truth"] if has_gt else []) + \
        [f"stage {k + 1} groups" for k in range(stages)] + ["prediction"]
    fig, axes = plt.subplots(len(samples), len(headers), figsize=(cell * len(headers), cell * len(samples)),
                             squeeze=False)
    present: set[int] = set()
    for r, s in enumerate(samples):
        panels = [s.image]
        if has_gt:
            panels.append(label_overlay(s.image, s.label, palette) if s.label is not None else s.image)
            if s.label is not None:
                present.update(int(v) for v in np.unique(s.label) if v != IGNORE_INDEX)
        for k in range(stages):
            panels.append(group_overlay(s.image, s.stage_groups[k]) if k < len(s.stage_groups) else s.image)
        panels.append(label_overlay(s.image, s.prediction, palette))
        present.update(int(v) for v in np.unique(s.prediction))
        for c, (ax, panel) in enumerate(zip(axes[r], panels)):
            ax.imshow(panel, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(headers[c], fontsize=9)
        axes[r][0].set_ylabel(s.id, fontsize=7)
    handles = class_legend(sorted(present), class_names, palette)
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=min(6, len(handles)), fontsize=8, frameon=False,
                   bbox_to_anchor=(0.5, -0.02 - 0.02 * (len(handles) // 6)))
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def per_class_iou_bar(per_class: Mapping[str, float | None], path: str | os.PathLike, title: str | None = None,
                      miou: float | None = None) -> Path:
    """Horizontal bars of per-class IoU (in %), sorted; classes without a value (NaN) are listed as n/a."""
    items = [(k, v) for k, v in per_class.items()]
    scored = sorted([(k, float(v)) for k, v in items if v is not None and not np.isnan(v)], key=lambda kv: kv[1])
    missing = [k for k, v in items if v is None or np.isnan(v)]
    names = [f"{k} (n/a)" for k in missing] + [k for k, _ in scored]  # best on top, n/a at the bottom
    values = [0.0] * len(missing) + [100 * v for _, v in scored]
    fig, ax = plt.subplots(figsize=(6, max(2.0, 0.22 * len(names) + 0.8)))
    ax.barh(range(len(names)), values, color="#4477aa")
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names, fontsize=7)
    ax.set_xlim(0, 100)
    ax.set_xlabel("IoU (%)")
    if miou is not None and not np.isnan(miou):
        ax.axvline(100 * miou, color="#cc3311", linestyle="--", linewidth=1, label=f"mIoU {100 * miou:.1f}")
        ax.legend(fontsize=8, loc="lower right")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def per_class_iou_heatmap(table: Mapping[str, Mapping[str, float | None]], path: str | os.PathLike,
                          title: str | None = None) -> Path:
    """Models (rows) x classes (columns) IoU in %, annotated; NaN cells blank."""
    import pandas as pd
    import seaborn as sns

    frame = pd.DataFrame({m: {c: (np.nan if v is None else 100 * float(v)) for c, v in row.items()}
                          for m, row in table.items()}).T
    width = max(4.0, 0.45 * frame.shape[1] + 2)
    fig, ax = plt.subplots(figsize=(width, max(1.8, 0.45 * frame.shape[0] + 1.2)))
    sns.heatmap(frame, ax=ax, vmin=0, vmax=100, cmap="viridis", annot=frame.shape[1] <= 30, fmt=".0f",
                annot_kws={"fontsize": 7}, cbar_kws={"label": "IoU (%)"})
    ax.set_xticklabels(ax.get_xticklabels(), rotation=60, ha="right", fontsize=7)
    ax.set_yticklabels(ax.get_yticklabels(), rotation=0, fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)
