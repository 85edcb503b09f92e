"""A segmentation split on disk: image/mask paths, class names, and layout checks with useful errors.

Readers return RGB uint8 images and integer masks (0 = background, 255 = ignore); they never resize, so the
metrics are computed at the annotation's own resolution as mmseg does.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image

from groupvit.evaluation.preprocess import load_rgb


class DatasetLayoutError(FileNotFoundError):
    """A dataset is missing or not in the expected layout; the message says what and how to get it."""


# Where `groupvit download-eval` puts each real dataset under its --root (groupvit.evaluation.download.sets.EVAL_SETS).
_DOWNLOAD_LAYOUT = {"voc": ("voc", "VOCdevkit", "VOC2012"), "context": ("context", "VOCdevkit", "VOC2010"),
                    "coco_object": ("coco",)}


def _how_to_get(dataset: str, root: Path) -> str:
    if dataset not in _DOWNLOAD_LAYOUT:
        return f"Run `snakemake {root}` to generate it (or pass its root)"
    tail = _DOWNLOAD_LAYOUT[dataset]
    parts = Path(root).parts
    data_root = Path(*parts[:-len(tail)]) if parts[-len(tail):] == tail else None  # Path() is '.'
    where = f" --root {data_root}" if data_root is not None else " --root DIR"
    note = "" if data_root is not None else f" (it then lives under DIR/{'/'.join(tail)}; pass that as the root)"
    return (f"Download and prepare it with `groupvit download-eval --dataset {dataset}{where}`{note}; a snakemake "
            f"run of a preset that lists it does the same (rule download_eval_dataset)")


def layout_error(dataset: str, missing: Path, root: Path, layout: str, extra: str = "") -> DatasetLayoutError:
    return DatasetLayoutError(
        f"{dataset}: {missing} is missing.{(' ' + extra) if extra else ''}\n"
        f"Expected under {root}:\n{layout}\n"
        f"{_how_to_get(dataset, root)}, or set eval.datasets to leave {dataset} out."
    )


def read_label_png(path: str | Path) -> np.ndarray:
    """Class-index mask of a palette ('P') or greyscale PNG as a 2-D integer array (indices, not colours)."""
    try:  # the project's VOC helper when present (same semantics)
        from groupvit.data.voc import read_mask  # type: ignore[import-not-found]
    except ImportError:
        read_mask = None
    if read_mask is not None:
        return np.asarray(read_mask(path))
    with Image.open(path) as im:
        if im.mode not in ("P", "L", "I", "I;16"):
            raise ValueError(f"{path}: mask mode {im.mode!r}; expected a palette or greyscale PNG of class indices")
        return np.array(im)


@dataclass(frozen=True)
class SegSample:
    id: str
    image_path: Path
    mask_path: Path


@dataclass(frozen=True)
class EvalItem:
    id: str
    image: np.ndarray  # [H, W, 3] uint8 RGB
    mask: np.ndarray  # [H, W] integer labels, 255 = ignore


@dataclass
class SegDataset:
    """One evaluation split. class_names/prompt_names include background at index 0."""

    name: str
    root: Path
    samples: list[SegSample]
    class_names: list[str]
    prompt_names: list[str]
    ignore_index: int = 255
    mask_transform: Callable[[np.ndarray], np.ndarray] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if len(self.class_names) != len(self.prompt_names):
            raise ValueError("class_names and prompt_names must align")

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def foreground_prompts(self) -> list[str]:
        """The text queries: prompt names without background."""
        return self.prompt_names[1:]

    def load_mask(self, index: int) -> np.ndarray:
        mask = read_label_png(self.samples[index].mask_path)
        return self.mask_transform(mask) if self.mask_transform is not None else mask

    def __getitem__(self, index: int) -> EvalItem:
        s = self.samples[index]
        return EvalItem(id=s.id, image=load_rgb(s.image_path), mask=self.load_mask(index))

    def head(self, n: int) -> "SegDataset":
        """The first n samples (n <= 0: all), for eval.max_images and smoke runs."""
        return self if n <= 0 else replace(self, samples=self.samples[:n])


def read_split(split_file: Path) -> list[str]:
    """Image ids of a split file: one per line, blank lines skipped."""
    return [line.strip() for line in split_file.read_text().splitlines() if line.strip()]


def check_files(dataset: str, samples: list[SegSample], root: Path, layout: str) -> None:
    """Fail with the first missing image/mask and how many are missing, rather than mid-evaluation."""
    missing = [p for s in samples for p in (s.image_path, s.mask_path) if not p.is_file()]
    if missing:
        raise layout_error(dataset, missing[0], root, layout, extra=f"({len(missing)} files of the split missing)")
