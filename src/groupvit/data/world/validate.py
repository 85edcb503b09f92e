"""Reject a world config that would generate a misleading world, before any work is done.

The JSON schema checks types and ranges; this checks what the schema cannot: known shape names, classes that
rotation leaves distinguishable, and ranges whose two ends are in order.
"""
from __future__ import annotations

from groupvit.data.world.config import WorldConfig
from groupvit.data.world.distinct import check_distinguishable
from groupvit.data.world.rules import check_world_rules
from groupvit.data.world.spec import BACKGROUND_KINDS


def validate_world(cfg: WorldConfig) -> None:
    """Raise ValueError with the offending `world.*` key when the config cannot make a sound world."""
    if len(cfg.classes) < 2:
        raise ValueError("world.classes needs at least two classes")
    if len(cfg.classes) > 254:
        raise ValueError("world.classes: at most 254 classes fit in a VOC mask (255 is ignore)")
    check_distinguishable(list(cfg.classes), cfg.rotation_deg)
    check_world_rules(cfg)
    if not 0 <= cfg.max_occlusion <= 1:
        raise ValueError(f"world.max_occlusion must lie in [0, 1], got {cfg.max_occlusion}")
    if cfg.image_size < 16:
        raise ValueError(f"world.image_size must be at least 16, got {cfg.image_size}")
    unknown = [b for b in cfg.backgrounds if b not in BACKGROUND_KINDS]
    if unknown or not cfg.backgrounds:
        raise ValueError(f"world.backgrounds: unknown or empty {cfg.backgrounds}; known: {list(BACKGROUND_KINDS)}")
    if cfg.caption.template_set not in ("rich", "simple"):
        raise ValueError(f"world.caption.template_set must be rich or simple, got {cfg.caption.template_set!r}")
    for name in ("num_train", "num_val", "num_eval"):
        if getattr(cfg, name) < 0:
            raise ValueError(f"world.{name} must be >= 0")
    if cfg.shard_size < 1:
        raise ValueError("world.shard_size must be >= 1")
