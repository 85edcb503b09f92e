"""Pascal VOC 2012 segmentation-mask conventions: the palette, and reading/writing palette PNGs.

Masks store the class index per pixel (0 = background, 255 = ignore) in an indexed ('P') PNG whose palette is
VOC's, so the same files open as coloured images in any viewer and as label arrays in code, exactly like the
real `SegmentationClass/*.png` files that mmsegmentation's VOC loader reads.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from groupvit.atomic import atomic_open

IGNORE_INDEX = 255


def voc_palette(n: int = 256) -> np.ndarray:
    """VOC's colour map: the bits of the class index spread over the high bits of R, G and B."""
    pal = np.zeros((n, 3), np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal[i] = (r, g, b)
    return pal


VOC_PALETTE: np.ndarray = voc_palette()  # 256 x 3 uint8; row 1 = (128, 0, 0), row 255 = (224, 224, 192)
_FLAT_PALETTE: list[int] = VOC_PALETTE.reshape(-1).tolist()


def mask_to_image(mask: np.ndarray) -> Image.Image:
    """A class-index array as a 'P' image with the VOC palette."""
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {mask.shape}")
    if mask.dtype != np.uint8:
        if mask.min() < 0 or mask.max() > 255:
            raise ValueError("mask values must lie in [0, 255]")
        mask = mask.astype(np.uint8)
    img = Image.frombytes("P", (mask.shape[1], mask.shape[0]), np.ascontiguousarray(mask).tobytes())
    img.putpalette(_FLAT_PALETTE)
    return img


def write_palette_png(path: str | Path, mask: np.ndarray) -> None:
    """Write a class-index mask as a VOC palette PNG, atomically (temp file + rename)."""
    with atomic_open(path, "wb") as fh:
        mask_to_image(mask).save(fh, format="PNG", optimize=False)


def read_mask(path: str | Path) -> np.ndarray:
    """Class-index array (H, W) uint8 from a VOC mask: 'P' and 'L' PNGs give their indices; an RGB rendering of
    a mask is mapped back through the VOC palette (colours outside it become IGNORE_INDEX)."""
    with Image.open(path) as img:
        if img.mode in ("P", "L"):
            return np.array(img, dtype=np.uint8)
        if img.mode in ("I", "I;16"):  # 16/32-bit greyscale label maps
            values = np.array(img)
            if values.min() < 0 or values.max() > 255:
                raise ValueError(f"{path}: label values outside [0, 255]")
            return values.astype(np.uint8)
        rgb = np.asarray(img.convert("RGB"), dtype=np.int64)
    code = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    pal = VOC_PALETTE.astype(np.int64)
    lut = {int((r << 16) | (g << 8) | b): i for i, (r, g, b) in enumerate(pal.tolist())}
    out = np.full(code.shape, IGNORE_INDEX, np.uint8)
    for value in np.unique(code).tolist():
        if value in lut:
            out[code == value] = lut[value]
    return out
