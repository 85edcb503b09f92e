"""Small evaluation-set archives in the real releases' layouts, built deterministically (same bytes every time, so
their sha256 can be pinned): Pascal VOC 2012, VOC2010 + Pascal-Context's full-label .mat maps, COCO val2017 +
COCO-Stuff label maps. Each builder also returns the masks the conversion must produce.

Used by the loopback rehearsal server (groupvit.rehearsal.server) and by the download tests.
"""
from __future__ import annotations

import gzip
import io
import tarfile
import zipfile

import numpy as np
from PIL import Image, ImageDraw

from groupvit.evaluation.datasets.names import CONTEXT_CLASSES
from groupvit.evaluation.download.sets import CONTEXT_459_IDS

ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def jpg_bytes(seed: int, h: int = 10, w: int = 14) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def scene_jpg_bytes(mask: np.ndarray, seed: int) -> bytes:
    """A photo-like image for a label map: each label a flat colour with noise, so segments follow the mask."""
    rng = np.random.default_rng(seed)
    colours = rng.integers(30, 225, (256, 3))
    image = colours[mask].astype(np.int16) + rng.integers(-20, 20, (*mask.shape, 3))
    buf = io.BytesIO()
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def png_bytes(mask: np.ndarray, palette: bool = False) -> bytes:
    buf = io.BytesIO()
    im = Image.fromarray(mask.astype(np.uint8), mode="P" if palette else "L")
    if palette:
        im.putpalette([v for i in range(256) for v in (i, (3 * i) % 256, 255 - i)])
    im.save(buf, "PNG")
    return buf.getvalue()


def tar_bytes(members: dict[str, bytes], gz: bool = False) -> bytes:
    """A tar (gzipped if gz) with fixed member times and owners, and a gzip header without a time stamp."""
    buf = io.BytesIO()
    fileobj = gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) if gz else buf
    with tarfile.open(fileobj=fileobj, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    if gz:
        fileobj.close()
    return buf.getvalue()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=ZIP_DATE), data)
    return buf.getvalue()


def mat_bytes(label_map: np.ndarray) -> bytes:
    """A MATLAB 5 file holding `LabelMap`, with scipy's dated header text replaced by a fixed one."""
    from scipy.io import savemat

    buf = io.BytesIO()
    savemat(buf, {"LabelMap": label_map})
    data = bytearray(buf.getvalue())
    data[:116] = b"MATLAB 5.0 MAT-file, groupvit rehearsal".ljust(116)
    return bytes(data)


def _blobs(h: int, w: int, labels: list[int], seed: int, fill: int = 0) -> np.ndarray:
    """A label map with one rectangle or ellipse per label on `fill`."""
    rng = np.random.default_rng(seed)
    image = Image.new("L", (w, h), fill)
    draw = ImageDraw.Draw(image)
    for k, label in enumerate(labels):
        x0, y0 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
        box = (x0, y0, x0 + int(rng.integers(w // 4, w // 2)), y0 + int(rng.integers(h // 4, h // 2)))
        (draw.ellipse if k % 2 else draw.rectangle)(box, fill=int(label))
    return np.asarray(image).copy()


def _voc_mask(k: int, h: int, w: int) -> np.ndarray:
    if (h, w) == (10, 14):
        m = np.zeros((10, 14), np.uint8)
        m[2:6, 3:9] = k + 1  # class k+1
    else:
        m = _blobs(h, w, [1 + (3 * k) % 20, 1 + (7 * k + 5) % 20], seed=k)
    m[0, :] = 255  # ignore border
    return m


def voc2012_tar(ids: tuple[str, ...] = ("2007_000033", "2007_000042"), h: int = 10, w: int = 14,
                ) -> tuple[bytes, dict[str, np.ndarray]]:
    """VOCtrainval_11-May-2012.tar's layout: JPEGImages, SegmentationClass (palette PNG), the val split, plus a
    train image and an annotation the conversion must not extract."""
    base = "VOCdevkit/VOC2012"
    members, masks = {}, {}
    for k, i in enumerate(ids):
        masks[i] = _voc_mask(k, h, w)
        members[f"{base}/JPEGImages/{i}.jpg"] = jpg_bytes(k, h, w) if (h, w) == (10, 14) else scene_jpg_bytes(
            masks[i], k)
        members[f"{base}/SegmentationClass/{i}.png"] = png_bytes(masks[i], palette=True)
    members[f"{base}/JPEGImages/2008_000001.jpg"] = jpg_bytes(9)  # a train image
    members[f"{base}/ImageSets/Segmentation/val.txt"] = ("\n".join(ids) + "\n").encode()
    members[f"{base}/Annotations/{ids[0]}.xml"] = b"<annotation/>"  # not needed: must not be extracted
    return tar_bytes(members), masks


def context_archives(ids: tuple[str, ...] = ("2008_000002", "2008_000003"), h: int = 10, w: int = 14,
                     ) -> tuple[bytes, bytes, dict[str, np.ndarray]]:
    """VOC2010 images + split (VOCtrainval_03-May-2010.tar), and the Context release's trainval.tar.gz: full-label
    .mat maps (values = labels.txt line numbers) with labels.txt. Returns the 59-class masks expected."""
    base = "VOCdevkit/VOC2010"
    labels, expected, voc = {}, {}, {}
    for k, i in enumerate(ids):
        if (h, w) == (10, 14):
            full = np.zeros((10, 14), np.uint16)
            full[1:4, 1:5] = 2  # aeroplane -> 1
            full[5:8, 2:6] = 458 if k == 0 else 284  # wood -> 59 / person -> 37
            full[8:, :] = 1  # "accordion": not one of the 59 -> background 0
            full[0, 0] = 0
            voc[f"{base}/JPEGImages/{i}.jpg"] = jpg_bytes(k)
        else:  # a Context class covering the image, two more on top, a non-59 label strip
            classes = [CONTEXT_459_IDS[1 + (5 * k + j * 11) % 59] for j in range(3)]
            full = _blobs(h, w, classes[1:], seed=100 + k, fill=classes[0]).astype(np.uint16)
            full[-h // 8:, :] = 1
        exp = np.zeros(full.shape, np.uint8)
        for c, full_id in enumerate(CONTEXT_459_IDS):
            exp[full == full_id] = c
        expected[i] = exp
        if (h, w) != (10, 14):
            voc[f"{base}/JPEGImages/{i}.jpg"] = scene_jpg_bytes(full % 256, k)
        labels[f"trainval/{i}.mat"] = mat_bytes(full)
    voc[f"{base}/ImageSets/Main/val.txt"] = ("\n".join(ids) + "\n").encode()
    voc[f"{base}/ImageSets/Main/train.txt"] = b"2008_000008\n"
    names = {full_id: CONTEXT_CLASSES[c] for c, full_id in enumerate(CONTEXT_459_IDS) if c}
    labels["labels.txt"] = "\n".join(f"{j}: {names.get(j, f'other{j}')}" for j in range(1, 460)).encode()
    return tar_bytes(voc), tar_bytes(labels, gz=True), expected


def coco_archives(ids: tuple[str, ...] = ("000000000139", "000000000285"), h: int = 10, w: int = 14,
                  ) -> tuple[bytes, bytes, dict[str, np.ndarray]]:
    """val2017.zip and COCO-Stuff's stuffthingmaps_trainval2017.zip (value = COCO id - 1, 255 = unlabeled, stuff
    92+), with a train map the conversion must not extract. Returns the 81-class masks expected."""
    from groupvit.evaluation.datasets.coco_object import coco_stuff_to_object

    images, maps, expected = {}, {}, {}
    for k, i in enumerate(ids):
        if (h, w) == (10, 14):
            raw = np.full((10, 14), 255, np.uint8)  # unlabeled -> 0
            raw[1:4, 1:4] = 0  # person (COCO id 1) -> 1
            raw[4:6, :] = 12 if k == 0 else 89  # stop sign (id 13) -> 12 / toothbrush (id 90) -> 80
            raw[7:9, 5:9] = 120  # a stuff class -> 0
            images[f"val2017/{i}.jpg"] = jpg_bytes(k)
        else:  # stuff everywhere, two things and an unlabeled strip
            raw = _blobs(h, w, [(17 * k) % 90, (29 * k + 2) % 90], seed=200 + k, fill=120 + k)
            raw[:h // 10, :] = 255
            images[f"val2017/{i}.jpg"] = scene_jpg_bytes(raw, k)
        maps[f"val2017/{i}.png"] = png_bytes(raw)
        expected[i] = coco_stuff_to_object(raw)
    maps["train2017/000000000009.png"] = png_bytes(np.zeros((4, 4), np.uint8))  # must not be extracted
    return zip_bytes(images), zip_bytes(maps), expected
