"""Knobs of the synthetic image-caption-mask world.

The world's difficulty decides whether grouping can emerge at all on a CPU budget (docs/embedded-world.md): the
defaults describe a CPU-learnable world, and each knob makes the task harder (clutter, occlusion, attribute words
that offer shortcuts) or easier.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class CaptionConfig:
    """How captions describe a scene. Rates are per mention, drawn independently."""

    colour_word_rate: float = 0.3  # a colour word is an easy shortcut: keep it rare so shapes must be learnt
    size_word_rate: float = 0.2  # "small"/"large", relative to the image
    texture_word_rate: float = 0.1  # "striped", "dotted" for textured objects
    count_words: bool = True  # "two stars" instead of "a star and a star"
    relation_rate: float = 0.4  # "above", "left of", "next to" between two objects
    background_word_rate: float = 0.2  # "on a striped background"
    template_set: str = "rich"  # rich | simple ("a photo of a {objects}.")


@dataclass
class WorldConfig:
    """A deterministic procedural world: same config and seed, same bytes."""

    seed: int = 0
    image_size: int = 64
    # Object classes by shape name; the registry in groupvit.data.world.shapes lists what exists.
    classes: list[str] = field(
        default_factory=lambda: [
            "circle", "square", "triangle", "star", "cross",
            "ring", "heart", "crescent", "arrow", "semicircle",
        ]
    )
    # diameter of the disc with the object's area / image side: every class has the same area at a given size, so
    # area never reveals the class (spiky or hollow shapes reach up to ~1.9x further; see shapes.py)
    object_size: list[float] = field(default_factory=lambda: [0.3, 0.55])
    objects_per_image: list[int] = field(default_factory=lambda: [1, 3])  # inclusive range
    max_occlusion: float = 0.3  # largest fraction of an object's area that later objects may cover
    rotation_deg: float = 180.0  # objects rotate uniformly in [-r, r]
    background_clutter: float = 0.5  # probability of a textured rather than a plain background
    backgrounds: list[str] = field(
        default_factory=lambda: ["plain", "gradient", "stripes", "checker", "noise", "blobs"]
    )
    object_texture_rate: float = 0.2  # probability an object is filled with a pattern instead of a flat colour
    hard_negative_rate: float = 0.0  # fraction of train samples emitted as a twin with one object's shape swapped
    caption: CaptionConfig = field(default_factory=CaptionConfig)
    num_train: int = 50000
    num_val: int = 300  # masked split for tuning decisions
    num_eval: int = 500  # masked split the tables report; never used for tuning
    shard_size: int = 2000
