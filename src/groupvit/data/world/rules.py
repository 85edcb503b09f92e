"""The cross-field rules of a WorldConfig: ranges whose two ends must be in order.

Light (no rendering), so that the config loader checks them when it reads a preset; validate_world checks them
again, with the rules that need the shapes, before a world is generated.
"""
from __future__ import annotations

from typing import Any


def check_world_rules(cfg: Any) -> None:
    """Raise ValueError naming the `world.*` key of a WorldConfig whose range is out of order."""
    lo, hi = cfg.object_size
    if not 0 < lo <= hi <= 1:
        raise ValueError(f"world.object_size must satisfy 0 < min <= max <= 1 (fractions of the image), "
                         f"got {cfg.object_size}")
    lo_n, hi_n = cfg.objects_per_image
    if not 1 <= lo_n <= hi_n:
        raise ValueError(f"world.objects_per_image must satisfy 1 <= min <= max, got {cfg.objects_per_image}")
