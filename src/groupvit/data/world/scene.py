"""Sample a scene: which objects, how they look, where they sit, and what lies behind them.

Placement is by rejection: an object is accepted only where every object it covers keeps at least
`1 - max_occlusion` of its pixels (an object the caption names must be visibly there). Colours are drawn
uniformly from the palette, independently of the class; the only constraint is that touching objects never
share a colour, since two same-coloured shapes that touch merge into one silhouette that is neither.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from groupvit.data.world.colours import COLOUR_NAMES, jittered, muted_background_colour
from groupvit.data.world.config import WorldConfig
from groupvit.data.world.render import object_mask
from groupvit.data.world.shapes import get_shape
from groupvit.data.world.spec import OBJECT_TEXTURES, BackgroundSpec, ObjectSpec, Scene

PLACEMENT_ROUNDS = 10  # (size, rotation, position) draws per object, each rasterised once
SHIFTS_PER_ROUND = 16  # whole-pixel moves of that silhouette tried per round
MIN_VISIBLE_FLOOR = 0.1  # even with max_occlusion = 1 an object keeps a tenth of itself, or it is not "there"
MIN_OBJECT_PIXELS = 12  # at tiny image sizes an object smaller than this is not a recognisable shape
FIT = 0.98  # an object's enclosing circle spans at most this fraction of the image side


def min_visible(cfg: WorldConfig) -> float:
    return max(1.0 - cfg.max_occlusion, MIN_VISIBLE_FLOOR)


def fitted_size(cls: str, size: float) -> float:
    """Shrink the rare object whose enclosing circle would not fit in the image (only very spiky shapes at the
    top of the size range), rather than crop it at the border."""
    return min(size, FIT / (2 * get_shape(cls).radius))


def _visible_ok(masks: list[np.ndarray], covered: list[np.ndarray], new: np.ndarray, floor: float) -> bool:
    for mask, cov in zip(masks, covered):
        total = mask.sum()
        if 1.0 - np.logical_or(cov, mask & new).sum() / total < floor:
            return False
    return True


def layout_ok(scene: Scene, image_size: int, floor: float) -> bool:
    """Whether `scene` obeys the placement rules: every object keeps at least `floor` of its pixels and no two
    touching objects share a colour (used to vet hard-negative twins, whose new shape changes the geometry)."""
    masks = [object_mask(o, image_size) for o in scene.objects]
    for j in range(len(masks)):
        for k in range(j + 1, len(masks)):
            if scene.objects[j].colour == scene.objects[k].colour and _touching(masks[j], masks[k]):
                return False
    for k, mask in enumerate(masks):
        if mask.sum() < MIN_OBJECT_PIXELS:
            return False
        above = np.zeros_like(mask)
        for m in masks[k + 1:]:
            above |= m
        if 1.0 - (mask & above).sum() / mask.sum() < floor:
            return False
    return True


def _touching(a: np.ndarray, b: np.ndarray) -> bool:
    grown = a.copy()
    grown[1:] |= a[:-1]
    grown[:-1] |= a[1:]
    grown[:, 1:] |= grown[:, :-1].copy()
    grown[:, :-1] |= grown[:, 1:].copy()
    return bool((grown & b).any())


def _texture(cfg: WorldConfig, rng: np.random.Generator) -> tuple[str, float, float]:
    if rng.random() >= cfg.object_texture_rate:
        return "none", 0.0, 0.0
    kind = OBJECT_TEXTURES[int(rng.integers(len(OBJECT_TEXTURES)))]
    return kind, float(rng.uniform(0.0, 180.0)), float(rng.uniform(0.06, 0.1))


def _shifted(mask: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """`mask` moved by whole pixels (callers keep the object inside the image, so nothing falls off)."""
    out = np.zeros_like(mask)
    h, w = mask.shape
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = mask[max(-dy, 0):h - max(dy, 0),
                                                                     max(-dx, 0):w - max(dx, 0)]
    return out


def _place_one(cfg: WorldConfig, rng: np.random.Generator, cls: str, drawn: float, texture: tuple[str, float, float],
               masks: list[np.ndarray], covered: list[np.ndarray]) -> tuple[ObjectSpec, np.ndarray] | None:
    """Find a pose for one object on top of the others, or None.

    Each round rasterises the object once (size, rotation, a random position) and then tries whole-pixel moves
    of that silhouette, which cost an array shift instead of a drawing. A move that passes is redrawn at its
    exact position and checked again, so the guarantee never rests on the shortcut."""
    side = cfg.image_size
    floor = min_visible(cfg)
    for round_ in range(PLACEMENT_ROUNDS):
        # later rounds shrink the object towards the smallest size, so crowded scenes still get their drawn
        # number of objects (sizes stay inside the configured range)
        shrink = max(0.0, (round_ - PLACEMENT_ROUNDS / 2) / (PLACEMENT_ROUNDS / 2))
        size = fitted_size(cls, drawn + (cfg.object_size[0] - drawn) * shrink)
        reach = get_shape(cls).radius * size
        cx, cy = float(rng.uniform(reach, 1 - reach)), float(rng.uniform(reach, 1 - reach))
        rotation = float(rng.uniform(-cfg.rotation_deg, cfg.rotation_deg))
        base = ObjectSpec(cls=cls, colour="", rgb=(0, 0, 0), texture=texture[0], texture_angle=texture[1],
                          texture_period=texture[2], size=size, center=(cx, cy), rotation=rotation)
        mask = object_mask(base, side)
        if mask.sum() < MIN_OBJECT_PIXELS:
            continue
        x_moves = (math.ceil((reach - cx) * side), math.floor((1 - reach - cx) * side))
        y_moves = (math.ceil((reach - cy) * side), math.floor((1 - reach - cy) * side))
        for move in range(SHIFTS_PER_ROUND):
            dx = 0 if move == 0 else int(rng.integers(min(x_moves[0], 0), max(x_moves[1], 0) + 1))
            dy = 0 if move == 0 else int(rng.integers(min(y_moves[0], 0), max(y_moves[1], 0) + 1))
            if not _visible_ok(masks, covered, _shifted(mask, dx, dy), floor):
                continue
            if dx == 0 and dy == 0:
                return base, mask
            obj = dataclasses.replace(base, center=(cx + dx / side, cy + dy / side))
            exact = object_mask(obj, side)
            if exact.sum() >= MIN_OBJECT_PIXELS and _visible_ok(masks, covered, exact, floor):
                return obj, exact
    return None


def _place_objects(cfg: WorldConfig, rng: np.random.Generator) -> tuple[list[ObjectSpec], list[np.ndarray]]:
    lo, hi = cfg.objects_per_image
    objects: list[ObjectSpec] = []
    masks: list[np.ndarray] = []
    covered: list[np.ndarray] = []
    for _ in range(int(rng.integers(lo, hi + 1))):
        cls = cfg.classes[int(rng.integers(len(cfg.classes)))]
        drawn = float(rng.uniform(*cfg.object_size))
        placed = _place_one(cfg, rng, cls, drawn, _texture(cfg, rng), masks, covered)
        if placed is None:
            continue  # no acceptable spot: the scene stays truthful with one object fewer
        obj, mask = placed
        covered = [np.logical_or(c, m & mask) for c, m in zip(covered, masks)]
        objects.append(obj)
        masks.append(mask)
        covered.append(np.zeros_like(mask))
    return objects, masks


def _colour_objects(objects: list[ObjectSpec], masks: list[np.ndarray],
                    rng: np.random.Generator) -> list[ObjectSpec]:
    out: list[ObjectSpec] = []
    for k, obj in enumerate(objects):
        taken = {out[j].colour for j in range(k) if _touching(masks[j], masks[k])}
        allowed = [c for c in COLOUR_NAMES if c not in taken]
        name = allowed[int(rng.integers(len(allowed)))]
        out.append(dataclasses.replace(obj, colour=name, rgb=jittered(name, rng)))
    return out


def _background(cfg: WorldConfig, objects: list[ObjectSpec], rng: np.random.Generator) -> BackgroundSpec:
    textured = [b for b in cfg.backgrounds if b != "plain"]
    plain_allowed = "plain" in cfg.backgrounds
    if textured and (not plain_allowed or rng.random() < cfg.background_clutter):
        kind = textured[int(rng.integers(len(textured)))]
    else:
        kind = "plain"
    avoid = [o.rgb for o in objects]
    c0 = muted_background_colour(rng, avoid)
    c1 = muted_background_colour(rng, avoid)
    return BackgroundSpec(kind=kind, colours=(c0, c1), angle=float(rng.uniform(0.0, 180.0)),
                          period=float(rng.uniform(0.08, 0.2)), noise_seed=int(rng.integers(2**31 - 1)))


def sample_scene(cfg: WorldConfig, rng: np.random.Generator) -> Scene:
    """A fresh random scene; the same generator state gives the same scene."""
    objects, masks = _place_objects(cfg, rng)
    objects = _colour_objects(objects, masks, rng)
    return Scene(objects=tuple(objects), background=_background(cfg, objects, rng))


def swap_one_shape(cfg: WorldConfig, scene: Scene, rng: np.random.Generator) -> tuple[Scene, int] | None:
    """A hard-negative twin: one object takes a class absent from the scene, all else unchanged.

    Only an object that is the sole member of its class is swapped, and only to a class not yet present, so the
    caption's grouping and counts stay the same and exactly one noun changes. Returns (twin, swapped index),
    or None when no swap keeps the layout rules."""
    counts: dict[str, int] = {}
    for o in scene.objects:
        counts[o.cls] = counts.get(o.cls, 0) + 1
    candidates = [k for k, o in enumerate(scene.objects) if counts[o.cls] == 1]
    absent = [c for c in cfg.classes if c not in counts]
    if not candidates or not absent:
        return None
    floor = min_visible(cfg)
    for k in rng.permutation(candidates).tolist():
        for cls in rng.permutation(absent).tolist():
            obj = scene.objects[k]
            new = dataclasses.replace(obj, cls=cls, size=fitted_size(cls, obj.size))
            reach = get_shape(cls).radius * new.size
            if not all(reach <= c <= 1 - reach for c in new.center):
                continue  # the new shape would leave the image
            objects = list(scene.objects)
            objects[k] = new
            twin = dataclasses.replace(scene, objects=tuple(objects))
            if layout_ok(twin, cfg.image_size, floor):
                return twin, k
    return None
