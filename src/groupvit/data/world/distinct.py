"""Refuse class lists whose shapes cannot be told apart once objects are rotated.

A square rotated by 45 degrees IS a diamond (a class pair no model can separate by shape), and an
octagon at 20 px is nearly a circle. This check measures, for every pair of classes, the best overlap (IoU of
the equal-area silhouettes) over every relative rotation the world can produce (objects rotate independently
in [-r, r], so relative angles span [-2r, 2r]) and over mirroring (training flips images horizontally). Pairs
above the threshold are an error rather than a silent source of label noise.
"""
from __future__ import annotations

import itertools
from functools import lru_cache

import numpy as np

from groupvit.data.world.shapes import get_shape, rasterise

CONFUSABLE_IOU = 0.9  # circle/hexagon ~0.89 stays legal; circle/octagon (~0.95), square/rotated square (1.0) do not
_RES = 64  # silhouette raster side for the comparison
_STEP_DEG = 3.0


def _silhouette(name: str, rotation_deg: float, mirror: bool) -> np.ndarray:
    # area-normalised shapes at the same scale, so IoU compares form, not size
    return rasterise(get_shape(name).parts, _RES, _RES * 0.36, (_RES / 2, _RES / 2), rotation_deg, mirror)


@lru_cache(maxsize=None)
def pair_similarity(a: str, b: str, rotation_deg: float) -> float:
    """Highest IoU between class `a` and class `b` under any reachable relative rotation and mirroring."""
    ref = _silhouette(a, 0.0, False)
    span = min(2 * rotation_deg, 180.0)
    angles = np.arange(-span, span + 1e-9, _STEP_DEG) if span > 0 else np.array([0.0])
    best = 0.0
    for mirror in (False, True):
        for angle in angles:
            other = _silhouette(b, float(angle), mirror)
            inter = np.logical_and(ref, other).sum()
            union = np.logical_or(ref, other).sum()
            best = max(best, float(inter / union))
    return best


def confusable_pairs(classes: list[str] | tuple[str, ...], rotation_deg: float,
                     threshold: float = CONFUSABLE_IOU) -> list[tuple[str, str, float]]:
    """Every pair of classes whose silhouettes overlap above `threshold` at some reachable pose."""
    out = []
    for a, b in itertools.combinations(classes, 2):
        iou = pair_similarity(a, b, float(rotation_deg))
        if iou > threshold:
            out.append((a, b, round(iou, 3)))
    return out


def check_distinguishable(classes: list[str] | tuple[str, ...], rotation_deg: float,
                          threshold: float = CONFUSABLE_IOU) -> None:
    """Raise ValueError naming the confusable pairs, e.g. square + diamond-as-rotated-square."""
    for name in classes:
        get_shape(name)  # unknown names fail first, with the list of known shapes
    if len(set(classes)) != len(classes):
        raise ValueError(f"world.classes has duplicates: {list(classes)}")
    bad = confusable_pairs(classes, rotation_deg, threshold)
    if bad:
        pairs = "; ".join(f"{a} vs {b} (IoU {iou})" for a, b, iou in bad)
        raise ValueError(
            f"world.classes contains shapes that rotation_deg={rotation_deg} makes indistinguishable: {pairs}. "
            f"Drop one of each pair or lower world.rotation_deg (threshold IoU {threshold}).")
