"""Pascal VOC 2012 segmentation and the synthetic world's masked splits, which share its layout."""
from __future__ import annotations

from pathlib import Path

from groupvit.evaluation.datasets.base import SegDataset, SegSample, check_files, layout_error, read_split
from groupvit.evaluation.datasets.names import VOC_CLASSES, VOC_PROMPT_NAMES

DEFAULT_VOC_ROOT = Path("data/voc/VOCdevkit/VOC2012")

VOC_LAYOUT = (
    "  JPEGImages/<id>.jpg\n"
    "  SegmentationClass/<id>.png   (palette PNG, pixel = class index, 255 = ignore)\n"
    "  ImageSets/Segmentation/<split>.txt"
)


def voc_samples(dataset: str, root: Path, split: str, image_ext: str = ".jpg",
                extra_layout: str = "") -> list[SegSample]:
    """Samples of a VOC-layout split, checked on disk."""
    layout = VOC_LAYOUT + extra_layout
    split_file = root / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not split_file.is_file():
        raise layout_error(dataset, split_file, root, layout)
    samples = [SegSample(i, root / "JPEGImages" / f"{i}{image_ext}", root / "SegmentationClass" / f"{i}.png")
               for i in read_split(split_file)]
    check_files(dataset, samples, root, layout)
    return samples


def load_voc(root: str | Path = DEFAULT_VOC_ROOT, split: str = "val") -> SegDataset:
    """VOC2012 val: 1,449 images, 20 classes + background, 255 = boundary/ignore."""
    root = Path(root)
    return SegDataset(name="voc", root=root, samples=voc_samples("voc", root, split),
                      class_names=list(VOC_CLASSES), prompt_names=list(VOC_PROMPT_NAMES))


def load_synthetic(root: str | Path, split: str = "val") -> SegDataset:
    """The synthetic world's eval (or val) folder: VOC layout plus class_names.txt (line 0 = background).

    The world may write PNG images instead of JPEG; either is accepted.
    """
    root = Path(root)
    extra = "\n  class_names.txt   (one name per line, line 0 = background)"
    names_file = root / "class_names.txt"
    if not names_file.is_file():
        raise layout_error("synthetic", names_file, root, VOC_LAYOUT + extra)
    names = [n.strip() for n in names_file.read_text().splitlines() if n.strip()]
    if not names or names[0] != "background":
        raise ValueError(f"{names_file}: line 0 must be 'background', got {names[:1]}")
    split_file = root / "ImageSets" / "Segmentation" / f"{split}.txt"
    ids = read_split(split_file) if split_file.is_file() else []
    ext = ".jpg"
    if ids and not (root / "JPEGImages" / f"{ids[0]}.jpg").is_file() and (root / "JPEGImages" / f"{ids[0]}.png").is_file():
        ext = ".png"
    samples = voc_samples("synthetic", root, split, image_ext=ext, extra_layout=extra)
    prompts = [n.replace("_", " ") for n in names]
    return SegDataset(name="synthetic", root=root, samples=samples, class_names=names, prompt_names=prompts)
