"""COCO-Object: COCO-Stuff164k val2017 with the 80 things kept and everything else as background.

GroupViT's convert_dataset/convert_coco_object.py: COCO-Stuff PNG value v (= COCO category id - 1) of a thing
(v in 0-89, 80 used ids) -> its 1-based index among the things (1-80); stuff (91-181) and unlabeled (255) -> 0.
So COCO-Object has no ignore pixels. Converted masks are <id>_instanceTrainIds.png beside the raw <id>.png;
if only the raw masks are present the reader converts on the fly (same labels).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from groupvit.evaluation.datasets.base import SegDataset, SegSample, check_files, layout_error, read_label_png
from groupvit.evaluation.datasets.names import COCO_OBJECT_CLASSES, COCO_OBJECT_PROMPT_NAMES, COCO_THING_IDS

DEFAULT_COCO_ROOT = Path("data/coco")
CONVERTED_SUFFIX = "_instanceTrainIds.png"

COCO_LAYOUT = (
    "  images/<split>/<id>.jpg\n"
    "  annotations/<split>/<id>.png                 (COCO-Stuff164k labels: category id - 1, 255 = unlabeled)\n"
    f"  annotations/<split>/<id>{CONVERTED_SUFFIX}  (optional: converted COCO-Object labels 0-80)"
)


def _build_lut() -> np.ndarray:
    lut = np.zeros(256, dtype=np.uint8)  # stuff, unused ids and 255 -> background
    for train_id, coco_id in enumerate(COCO_THING_IDS, start=1):
        lut[coco_id - 1] = train_id
    return lut


COCO_STUFF_TO_OBJECT = _build_lut()


def coco_stuff_to_object(mask: np.ndarray) -> np.ndarray:
    """COCO-Stuff164k label map -> COCO-Object label map (uint8, 0 = background, 1-80 things)."""
    mask = np.asarray(mask)
    if mask.size and (mask.min() < 0 or mask.max() > 255):
        raise ValueError("COCO-Stuff labels must be in 0-255")
    return COCO_STUFF_TO_OBJECT[mask.astype(np.int64)]


def convert_coco_stuff_to_object(src_dir: str | Path, dst_dir: str | Path | None = None) -> int:
    """Write <id>_instanceTrainIds.png for every raw COCO-Stuff <id>.png in src_dir (default: beside it).
    Returns the number of masks written."""
    src_dir = Path(src_dir)
    dst_dir = Path(dst_dir) if dst_dir is not None else src_dir
    dst_dir.mkdir(parents=True, exist_ok=True)
    count = 0
    for path in sorted(src_dir.glob("*.png")):
        if path.name.endswith(CONVERTED_SUFFIX) or "TrainIds" in path.name:
            continue
        out = dst_dir / f"{path.stem}{CONVERTED_SUFFIX}"
        tmp = out.with_name(f".{out.name}.tmp.png")
        Image.fromarray(coco_stuff_to_object(read_label_png(path))).save(tmp, format="PNG")
        tmp.replace(out)
        count += 1
    return count


def load_coco_object(root: str | Path = DEFAULT_COCO_ROOT, split: str = "val2017") -> SegDataset:
    """All images of images/<split> (sorted by id), with converted masks or raw ones converted on the fly."""
    root = Path(root)
    image_dir, ann_dir = root / "images" / split, root / "annotations" / split
    for d in (image_dir, ann_dir):
        if not d.is_dir():
            raise layout_error("coco_object", d, root, COCO_LAYOUT)
    ids = sorted(p.stem for p in image_dir.glob("*.jpg"))
    if not ids:
        raise layout_error("coco_object", image_dir / "<id>.jpg", root, COCO_LAYOUT, extra="(no images)")
    converted = (ann_dir / f"{ids[0]}{CONVERTED_SUFFIX}").is_file()
    suffix = CONVERTED_SUFFIX if converted else ".png"
    samples = [SegSample(i, image_dir / f"{i}.jpg", ann_dir / f"{i}{suffix}") for i in ids]
    check_files("coco_object", samples, root, COCO_LAYOUT)
    return SegDataset(name="coco_object", root=root, samples=samples, class_names=list(COCO_OBJECT_CLASSES),
                      prompt_names=list(COCO_OBJECT_PROMPT_NAMES),
                      mask_transform=None if converted else coco_stuff_to_object)
