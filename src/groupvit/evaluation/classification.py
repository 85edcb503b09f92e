"""Zero-shot classification accuracy: ImageNet-style folders and the synthetic world's single-object crops.

The text side is the same as segmentation's (prompt ensemble, averaged, normalised); the image side is the
pooled image embedding `model.encode_image`. Preprocessing follows the official ImageNet evaluation: resize the
short side (bicubic) to eval.cls_resize, centre-crop eval.cls_crop.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from groupvit.evaluation.config import EvalConfig
from groupvit.evaluation.datasets.base import DatasetLayoutError, SegDataset
from groupvit.evaluation.preprocess import IMAGENET_MEAN, IMAGENET_STD, normalize, to_float_chw
from groupvit.evaluation.text import class_text_embeddings, model_device

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


# ---------------------------------------------------------------------------------------------- inputs
def classification_view(image: Image.Image | np.ndarray, resize: int, crop: int) -> Image.Image:
    """Short side -> `resize` (bicubic; 0 keeps), then a centre crop of `crop` (0 = none)."""
    im = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    im = im.convert("RGB")
    if resize > 0:
        w, h = im.size
        s = resize / min(w, h)
        im = im.resize((max(1, round(w * s)), max(1, round(h * s))), Image.BICUBIC)
    if crop > 0:
        w, h = im.size
        left, top = int(round((w - crop) / 2)), int(round((h - crop) / 2))
        im = im.crop((left, top, left + crop, top + crop))  # pads with black if the image is smaller
    return im


@dataclass(frozen=True)
class ImageFolder:
    """root/<class_name>/*.jpg; class names from folder names ('_' -> ' '), sorted like torchvision."""

    root: Path
    class_names: list[str]
    samples: list[tuple[Path, int]]


def load_image_folder(root: str | Path) -> ImageFolder:
    root = Path(root)
    if not root.is_dir():
        raise DatasetLayoutError(f"image folder {root} is missing: expected {root}/<class_name>/<image>.jpg")
    dirs = sorted(d for d in root.iterdir() if d.is_dir())
    samples = [(p, k) for k, d in enumerate(dirs) for p in sorted(d.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    if not samples:
        raise DatasetLayoutError(f"image folder {root} has no <class_name>/<image> files")
    return ImageFolder(root, [d.name.replace("_", " ") for d in dirs], samples)


# ---------------------------------------------------------------------------------------------- crops
def _components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    from scipy import ndimage

    return ndimage.label(mask)


def bbox_of(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1), exclusive end, of a non-empty boolean mask."""
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def object_boxes(mask: np.ndarray, objects: Sequence[dict] | None, class_index: dict[str, int],
                 min_pixels: int = 16) -> list[tuple[int, tuple[int, int, int, int]]]:
    """(class label, bbox) of each object of one image.

    With the world's annotations (objects with `class` and `center` as fractions of the side) each object is
    the connected component of its class nearest its centre; without them, every connected component of every
    class with at least `min_pixels` pixels is one object.
    """
    h, w = mask.shape
    out = []
    if objects is None:
        for label in np.unique(mask):
            if label in (0, 255):
                continue
            comps, n = _components(mask == label)
            for k in range(1, n + 1):
                comp = comps == k
                if comp.sum() >= min_pixels:
                    out.append((int(label), bbox_of(comp)))
        return out
    for obj in objects:
        label = class_index.get(str(obj.get("class")))
        if label is None or int(obj.get("pixels", min_pixels)) < min_pixels:
            continue
        comps, n = _components(mask == label)
        if n == 0:
            continue
        cx, cy = obj.get("center", (0.5, 0.5))
        px, py = min(w - 1, int(cx * w)), min(h - 1, int(cy * h))
        k = comps[py, px]
        if k == 0:  # centre occluded or outside the shape: nearest component pixel
            ys, xs = np.nonzero(comps)
            j = int(np.argmin((ys - py) ** 2 + (xs - px) ** 2))
            k = comps[ys[j], xs[j]]
        comp = comps == k
        if comp.sum() >= min_pixels:
            out.append((label, bbox_of(comp)))
    return out


def read_annotations(root: Path) -> dict[str, list[dict]] | None:
    """key -> objects from the world's annotations.jsonl, or None when the file is absent."""
    path = root / "annotations.jsonl"
    if not path.is_file():
        return None
    out = {}
    for line in path.read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            out[str(rec.get("key", rec.get("id")))] = list(rec.get("objects", []))
    return out


def object_crops(dataset: SegDataset, *, margin: float = 0.1, min_pixels: int = 16, max_images: int = 0
                 ) -> list[tuple[np.ndarray, int]]:
    """(RGB crop, class label) of every object in a masked split, cropped to its box plus `margin`."""
    annotations = read_annotations(dataset.root)
    class_index = {name: i for i, name in enumerate(dataset.class_names)}
    crops = []
    n = len(dataset) if max_images <= 0 else min(max_images, len(dataset))
    for i in range(n):
        item = dataset[i]
        objects = annotations.get(item.id) if annotations is not None else None
        h, w = item.mask.shape
        for label, (x0, y0, x1, y1) in object_boxes(item.mask, objects, class_index, min_pixels):
            mx, my = int(round((x1 - x0) * margin)), int(round((y1 - y0) * margin))
            crop = item.image[max(0, y0 - my):min(h, y1 + my), max(0, x0 - mx):min(w, x1 + mx)]
            crops.append((np.ascontiguousarray(crop), label))
    return crops


# ---------------------------------------------------------------------------------------------- scoring
@dataclass
class ClassificationResult:
    top1: float
    top5: float
    num_images: int
    per_class_acc: dict[str, float]

    def to_dict(self) -> dict:
        return {"top1": self.top1, "top5": self.top5, "num_images": self.num_images,
                "per_class_acc": self.per_class_acc}


@torch.no_grad()
def zero_shot_classify(model: nn.Module, images: Iterable[Image.Image | np.ndarray], labels: Sequence[int],
                       class_names: Sequence[str], cfg: EvalConfig, *, mean: Sequence[float] = IMAGENET_MEAN,
                       std: Sequence[float] = IMAGENET_STD) -> ClassificationResult:
    """Top-1/top-5 accuracy of cosine(image, class prompt ensemble); labels index `class_names`."""
    model.eval()
    device = model_device(model)
    text = class_text_embeddings(model, class_names, cfg.classification_templates)
    preds: list[torch.Tensor] = []
    batch: list[torch.Tensor] = []

    def flush() -> None:
        x = normalize(torch.stack(batch).to(device), mean, std)
        emb = torch.nn.functional.normalize(model.encode_image(x).float(), dim=-1)
        preds.append((emb @ text.t()).topk(min(5, len(class_names)), dim=-1).indices.cpu())
        batch.clear()

    for im in images:
        x = to_float_chw(classification_view(im, cfg.cls_resize, cfg.cls_crop))
        if batch and x.shape != batch[0].shape:  # without a crop, sizes vary: batch equal sizes only
            flush()
        batch.append(x)
        if len(batch) == max(1, cfg.batch_size):
            flush()
    if batch:
        flush()
    if not preds:
        raise ValueError("no images to classify")
    top = torch.cat(preds)
    target = torch.as_tensor(list(labels))[: len(top)]
    hit1 = top[:, 0] == target
    hit5 = (top == target[:, None]).any(dim=1)
    per_class = {}
    for k, name in enumerate(class_names):
        sel = target == k
        if sel.any():
            per_class[name] = float(hit1[sel].float().mean())
    return ClassificationResult(float(hit1.float().mean()), float(hit5.float().mean()), len(top), per_class)


def evaluate_image_folder(model: nn.Module, root: str | Path, cfg: EvalConfig, *, max_images: int = 0,
                          mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
                          ) -> ClassificationResult:
    """Zero-shot accuracy on root/<class_name>/*.jpg (ImageNet-style) with eval.classification_templates."""
    folder = load_image_folder(root)
    samples = folder.samples if max_images <= 0 else folder.samples[:max_images]

    def images() -> Iterable[Image.Image]:
        for path, _ in samples:
            with Image.open(path) as im:
                yield im.convert("RGB")

    return zero_shot_classify(model, images(), [k for _, k in samples], folder.class_names, cfg, mean=mean, std=std)


def evaluate_object_crops(model: nn.Module, dataset: SegDataset, cfg: EvalConfig, *, max_images: int = 0,
                          mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
                          ) -> ClassificationResult:
    """Zero-shot accuracy on single-object crops of a masked split (foreground classes only)."""
    crops = object_crops(dataset, max_images=max_images)
    if not crops:
        raise ValueError(f"{dataset.name}: no objects found to crop")
    names = dataset.foreground_prompts
    return zero_shot_classify(model, (c for c, _ in crops), [label - 1 for _, label in crops], names, cfg,
                              mean=mean, std=std)
