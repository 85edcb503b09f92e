"""Pascal Context (59 classes + background) in mmseg 0.x's layout, as GroupViT evaluated it.

mmseg's tools/convert_datasets/pascal_context.py turns the Detail API's trainval_merged.json into
SegmentationClassContext/<id>.png with labels 0-59 (0 = background: every one of the 400+ other classes).
The split file is ImageSets/SegmentationContext/val.txt (5,105 images).
"""
from __future__ import annotations

from pathlib import Path

from groupvit.evaluation.datasets.base import SegDataset, SegSample, check_files, layout_error, read_split
from groupvit.evaluation.datasets.names import CONTEXT_CLASSES, CONTEXT_PROMPT_NAMES

DEFAULT_CONTEXT_ROOT = Path("data/context/VOCdevkit/VOC2010")

CONTEXT_LAYOUT = (
    "  JPEGImages/<id>.jpg\n"
    "  SegmentationClassContext/<id>.png   (labels 0-59, 0 = background; mmseg's converted 60-class masks)\n"
    "  ImageSets/SegmentationContext/<split>.txt"
)


def load_context(root: str | Path = DEFAULT_CONTEXT_ROOT, split: str = "val") -> SegDataset:
    root = Path(root)
    split_file = root / "ImageSets" / "SegmentationContext" / f"{split}.txt"
    if not split_file.is_file():
        raise layout_error("context", split_file, root, CONTEXT_LAYOUT)
    samples = [SegSample(i, root / "JPEGImages" / f"{i}.jpg", root / "SegmentationClassContext" / f"{i}.png")
               for i in read_split(split_file)]
    check_files("context", samples, root, CONTEXT_LAYOUT)
    return SegDataset(name="context", root=root, samples=samples, class_names=list(CONTEXT_CLASSES),
                      prompt_names=list(CONTEXT_PROMPT_NAMES))
