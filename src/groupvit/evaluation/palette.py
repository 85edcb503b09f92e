"""Colours for class maps (VOC's palette, so figures match the dataset's own mask PNGs) and group maps."""
from __future__ import annotations

import numpy as np

from groupvit.data.voc import voc_palette


def class_palette(n: int = 256) -> np.ndarray:
    """[n, 3] uint8 VOC colour map (class 0 black, 255 cream for ignore): figures match the dataset's mask PNGs."""
    return voc_palette(n)


def group_palette(n: int, seed: int = 0) -> np.ndarray:
    """[n, 3] uint8 well-separated colours for group indices (golden-ratio hues, varied lightness)."""
    import colorsys

    rng = np.random.default_rng(seed)
    out = np.zeros((n, 3), np.uint8)
    for i in range(n):
        h = (i * 0.618033988749895) % 1.0
        light = 0.45 + 0.2 * ((i // 7) % 2) + 0.05 * rng.random()
        out[i] = [int(round(255 * v)) for v in colorsys.hls_to_rgb(h, light, 0.75)]
    return out


def colorize(label_map: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """[H, W] integer map -> [H, W, 3] uint8 via palette (values beyond it wrap around)."""
    label_map = np.asarray(label_map, dtype=np.int64)
    return palette[np.mod(label_map, len(palette))]


def blend(image: np.ndarray, colour: np.ndarray, alpha: float = 0.5, where: np.ndarray | None = None) -> np.ndarray:
    """Alpha-blend a colour map over an RGB image (only where `where` is True when given)."""
    out = image.astype(np.float32)
    mix = (1 - alpha) * out + alpha * colour.astype(np.float32)
    out = mix if where is None else np.where(where[..., None], mix, out)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
