"""The named colour palette. Colours are drawn independently of the class, so colour never predicts a shape;
names are words a caption may use, so each must be unambiguous to a reader."""
from __future__ import annotations

import numpy as np

# name -> RGB; well separated (pairwise RGB distance >= ~100) so a jittered colour keeps its name
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 35),
    "orange": (245, 135, 20),
    "yellow": (245, 225, 40),
    "green": (40, 170, 60),
    "cyan": (40, 210, 225),
    "blue": (35, 75, 215),
    "purple": (140, 50, 185),
    "pink": (245, 120, 185),
    "brown": (125, 75, 35),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}
COLOUR_NAMES: tuple[str, ...] = tuple(PALETTE)
JITTER = 12  # per-channel uniform jitter of an object's colour: colours are not a handful of exact values
MIN_BACKGROUND_DISTANCE = 90.0  # RGB distance every background colour keeps from every object colour


def jittered(name: str, rng: np.random.Generator) -> tuple[int, int, int]:
    base = np.asarray(PALETTE[name], dtype=np.int64)
    out = np.clip(base + rng.integers(-JITTER, JITTER + 1, size=3), 0, 255)
    return (int(out[0]), int(out[1]), int(out[2]))


def luminance(rgb: tuple[int, int, int] | np.ndarray) -> float:
    r, g, b = (float(v) for v in rgb)
    return 0.299 * r + 0.587 * g + 0.114 * b


def texture_partner(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """The second colour of a patterned fill: a darker (or, for dark colours, lighter) shade of the same hue,
    so a striped red star is still a red star."""
    c = np.asarray(rgb, dtype=np.float64)
    out = c * 0.5 if luminance(rgb) > 90 else c + (255 - c) * 0.5
    return (int(round(out[0])), int(round(out[1])), int(round(out[2])))


def muted_background_colour(rng: np.random.Generator, avoid: list[tuple[int, int, int]]) -> tuple[int, int, int]:
    """A desaturated colour for backgrounds, kept away from every object colour so objects stay visible.

    Falls back to the candidate farthest from the objects if none is far enough after a few draws."""
    best, best_dist = (128, 128, 128), -1.0
    for _ in range(24):
        hue = np.asarray(PALETTE[COLOUR_NAMES[int(rng.integers(len(COLOUR_NAMES)))]], dtype=np.float64)
        grey = rng.uniform(40, 215)
        mix = rng.uniform(0.35, 0.7)  # weight of the grey: backgrounds are calmer than objects
        c = hue * (1 - mix) + grey * mix
        dist = min((float(np.linalg.norm(c - np.asarray(a, dtype=np.float64))) for a in avoid), default=1e9)
        if dist > best_dist:
            best, best_dist = (int(round(c[0])), int(round(c[1])), int(round(c[2]))), dist
        if dist >= MIN_BACKGROUND_DISTANCE:
            break
    return best
