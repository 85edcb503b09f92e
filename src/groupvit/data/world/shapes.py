"""The shape registry: each object class is a shape, and nothing else about it (colour, size, texture) is tied
to the class.

Every shape is stored as an ordered list of polygon parts in a unit frame (y points down, as in images); a part
either adds area or cuts a hole (ring, crescent), painted in order. All shapes are normalised to the SAME area
(that of a circle of diameter 1) and centred on their smallest enclosing circle: an object's area then says
nothing about its class, and a rotation about the centre never moves any part of it outside that circle. An
object of size `s` has the area of a disc of diameter `s`; spiky or hollow shapes reach further out (up to
0.94 s for the bolt, 0.86 s for the arrow, against 0.5 s for the circle: see `ShapeSpec.radius`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw

Part = tuple[np.ndarray, bool]  # (N x 2 polygon in the unit frame, True = adds area / False = cuts a hole)


@dataclass(frozen=True)
class ShapeSpec:
    """A class's geometry plus the words a caption uses for it."""

    name: str
    plural: str
    parts: tuple[Part, ...]  # area-normalised, centred on the smallest enclosing circle
    radius: float  # radius of that circle: what must fit inside the image at any rotation


# ---------------------------------------------------------------------------------------------- raw outlines
def _regular(n: int, r: float = 1.0, phase: float = -math.pi / 2) -> np.ndarray:
    """A regular n-gon with a vertex straight up (phase -90 degrees in image coordinates)."""
    t = phase + 2 * math.pi * np.arange(n) / n
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)


def _disc(r: float = 1.0, cx: float = 0.0, cy: float = 0.0, n: int = 96) -> np.ndarray:
    return _regular(n, r) + np.array([cx, cy])


def _circle() -> list[Part]:
    return [(_disc(), True)]


def _square() -> list[Part]:
    return [(np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], float), True)]


def _triangle() -> list[Part]:
    return [(_regular(3), True)]


def _star() -> list[Part]:
    # inner radius 0.45 (a "fat" star): thinner points vanish into one or two pixels at 64 px
    outer, inner = _regular(5, 1.0), _regular(5, 0.45, -math.pi / 2 + math.pi / 5)
    return [(np.stack([outer, inner], axis=1).reshape(-1, 2), True)]


def _cross() -> list[Part]:
    a = 0.34  # half arm width: thick enough to stay two arms wide at the smallest size
    pts = [(-a, -1), (a, -1), (a, -a), (1, -a), (1, a), (a, a), (a, 1), (-a, 1), (-a, a), (-1, a), (-1, -a),
           (-a, -a)]
    return [(np.array(pts, float), True)]


def _xshape() -> list[Part]:
    (pts, _), = _cross()
    c = s = math.sqrt(0.5)
    return [(pts @ np.array([[c, s], [-s, c]]), True)]


def _ring() -> list[Part]:
    return [(_disc(1.0), True), (_disc(0.55), False)]


def _heart() -> list[Part]:
    t = np.linspace(0, 2 * math.pi, 120, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    return [(np.stack([x, y], axis=1) / 16.0, True)]


def _crescent() -> list[Part]:
    # the cut circle leaves a body 0.65 radii thick: thinner horns disappear at small sizes
    return [(_disc(1.0), True), (_disc(0.85, 0.5, 0.0), False)]


def _arrow() -> list[Part]:
    pts = [(-1, -0.24), (0.15, -0.24), (0.15, -0.62), (1, 0), (0.15, 0.62), (0.15, 0.24), (-1, 0.24)]
    return [(np.array(pts, float), True)]


def _diamond() -> list[Part]:
    # an elongated rhombus (diagonals 1 : 0.58), so that no rotation turns it into a square
    return [(np.array([[0, -1], [0.58, 0], [0, 1], [-0.58, 0]], float), True)]


def _ellipse() -> list[Part]:
    return [(_disc() * np.array([1.0, 0.5]), True)]


def _semicircle() -> list[Part]:
    t = np.linspace(math.pi, 2 * math.pi, 49)
    return [(np.stack([np.cos(t), np.sin(t)], axis=1), True)]


def _lshape() -> list[Part]:
    pts = [(0, 0), (0.42, 0), (0.42, 0.58), (1, 0.58), (1, 1), (0, 1)]
    return [(np.array(pts, float) * 2 - 1, True)]


def _tshape() -> list[Part]:
    pts = [(0, 0), (1, 0), (1, 0.4), (0.7, 0.4), (0.7, 1), (0.3, 1), (0.3, 0.4), (0, 0.4)]
    return [(np.array(pts, float) * 2 - 1, True)]


def _drop() -> list[Part]:
    t = np.linspace(-math.pi / 6, math.pi + math.pi / 6, 60)  # lower arc of the round end
    arc = np.stack([0.6 * np.cos(t), 0.4 + 0.6 * np.sin(t)], axis=1)
    return [(np.concatenate([arc, [[0.0, -1.0]]]), True)]


def _bolt() -> list[Part]:
    pts = [(0.05, -1), (0.75, -1), (0.35, -0.2), (0.8, -0.2), (-0.35, 1), (-0.05, 0.12), (-0.5, 0.12)]
    return [(np.array(pts, float), True)]


def _trapezoid() -> list[Part]:
    return [(np.array([[-0.45, -0.65], [0.45, -0.65], [1, 0.65], [-1, 0.65]], float), True)]


def _parallelogram() -> list[Part]:
    return [(np.array([[-0.4, -0.55], [1, -0.55], [0.4, 0.55], [-1, 0.55]], float), True)]


def _pentagon() -> list[Part]:
    return [(_regular(5), True)]


def _hexagon() -> list[Part]:
    return [(_regular(6, phase=0.0), True)]


def _octagon() -> list[Part]:
    return [(_regular(8, phase=math.pi / 8), True)]


# name -> (outline, plural). Nouns are the class names themselves, so a caption's words map back to classes.
_OUTLINES: dict[str, tuple[Callable[[], list[Part]], str]] = {
    "circle": (_circle, "circles"),
    "square": (_square, "squares"),
    "triangle": (_triangle, "triangles"),
    "star": (_star, "stars"),
    "cross": (_cross, "crosses"),
    "ring": (_ring, "rings"),
    "heart": (_heart, "hearts"),
    "crescent": (_crescent, "crescents"),
    "arrow": (_arrow, "arrows"),
    "hexagon": (_hexagon, "hexagons"),
    "pentagon": (_pentagon, "pentagons"),
    "diamond": (_diamond, "diamonds"),
    "ellipse": (_ellipse, "ellipses"),
    "semicircle": (_semicircle, "semicircles"),
    "lshape": (_lshape, "lshapes"),
    "tshape": (_tshape, "tshapes"),
    "drop": (_drop, "drops"),
    "bolt": (_bolt, "bolts"),
    "octagon": (_octagon, "octagons"),
    "trapezoid": (_trapezoid, "trapezoids"),
    "parallelogram": (_parallelogram, "parallelograms"),
    "xshape": (_xshape, "xshapes"),
}

SHAPE_NAMES: tuple[str, ...] = tuple(_OUTLINES)
_MEASURE_RES = 512  # raster used once per shape to measure its area and centroid (holes make shoelace unsafe)


def rasterise_image(parts: tuple[Part, ...] | list[Part], size: int | tuple[int, int], scale: float,
                    center: tuple[float, float], rotation_deg: float = 0.0, mirror: bool = False) -> Image.Image:
    """Paint the parts into an 'L' image of `size` (side, or (width, height)), 255 inside: the one drawing
    routine every caller shares, so a shape looks the same to the renderer, the occlusion check and the
    distinguishability check. Positive rotation turns clockwise on screen (y points down)."""
    theta = math.radians(rotation_deg)
    rot = np.array([[math.cos(theta), math.sin(theta)], [-math.sin(theta), math.cos(theta)]])
    canvas = Image.new("L", (size, size) if isinstance(size, int) else size, 0)
    draw = ImageDraw.Draw(canvas)
    for pts, fill in parts:
        p = pts * np.array([-1.0, 1.0]) if mirror else pts
        p = (p @ rot) * scale + np.asarray(center)
        draw.polygon([tuple(xy) for xy in p.tolist()], fill=255 if fill else 0)
    return canvas


def rasterise(parts: tuple[Part, ...] | list[Part], size: int, scale: float, center: tuple[float, float],
              rotation_deg: float = 0.0, mirror: bool = False) -> np.ndarray:
    """`rasterise_image` as a boolean array."""
    return np.asarray(rasterise_image(parts, size, scale, center, rotation_deg, mirror)) > 127


def _enclosing_circle(points: np.ndarray, iters: int = 1000) -> tuple[np.ndarray, float]:
    """Approximate smallest enclosing circle (Badoiu-Clarkson core-set iteration; 1/iters accuracy), so
    off-centre shapes such as the crescent are placed and rotated about the middle of their extent."""
    c = points.mean(axis=0)
    for i in range(1, iters + 1):
        far = points[np.argmax(np.linalg.norm(points - c, axis=1))]
        c = c + (far - c) / (i + 1)
    return c, float(np.linalg.norm(points - c, axis=1).max())


@lru_cache(maxsize=None)
def get_shape(name: str) -> ShapeSpec:
    """The normalised geometry of a class; raises a clear error naming the known shapes."""
    if name not in _OUTLINES:
        raise ValueError(f"unknown shape class {name!r}; known shapes: {', '.join(SHAPE_NAMES)}")
    outline, plural = _OUTLINES[name]
    raw = outline()
    # measure the area on a fine raster of the raw outline (all outlines fit in [-1.3, 1.3])
    half = _MEASURE_RES / 2
    px_per_unit = half / 1.3
    area = rasterise(raw, _MEASURE_RES, px_per_unit, (half, half)).sum() / px_per_unit**2
    scale = math.sqrt((math.pi / 4) / area)  # area of a disc of diameter 1
    center, radius = _enclosing_circle(np.concatenate([pts for pts, fill in raw if fill]))
    parts = tuple(((pts - center) * scale, fill) for pts, fill in raw)
    return ShapeSpec(name=name, plural=plural, parts=parts, radius=radius * scale)
