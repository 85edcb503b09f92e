"""Plain descriptions of a scene. A scene holds every random choice, so rendering is a pure function of it:
a hard-negative twin can copy a scene, change one class, and re-render everything else identically."""
from __future__ import annotations

from dataclasses import dataclass

RGB = tuple[int, int, int]

OBJECT_TEXTURES: tuple[str, ...] = ("stripes", "dots", "checks")
TEXTURE_WORDS: dict[str, str] = {"stripes": "striped", "dots": "dotted", "checks": "checkered"}
BACKGROUND_KINDS: tuple[str, ...] = ("plain", "gradient", "stripes", "checker", "noise", "blobs")
BACKGROUND_WORDS: dict[str, str] = {
    "plain": "plain", "gradient": "gradient", "stripes": "striped", "checker": "checkered", "noise": "noisy",
    "blobs": "mottled",
}


@dataclass(frozen=True)
class ObjectSpec:
    """One object. Positions and sizes are fractions of the image side, so a scene is resolution-free."""

    cls: str
    colour: str  # palette name (the word a caption may use)
    rgb: RGB  # the jittered colour actually painted
    texture: str  # "none" or one of OBJECT_TEXTURES
    texture_angle: float  # degrees
    texture_period: float  # fraction of the image side
    size: float  # diameter of the disc with the object's area, as a fraction of the image side
    center: tuple[float, float]  # (x, y), fraction of the image side; the centre of rotation
    rotation: float  # degrees


@dataclass(frozen=True)
class BackgroundSpec:
    kind: str  # one of BACKGROUND_KINDS
    colours: tuple[RGB, RGB]
    angle: float  # degrees: direction of gradient / stripes / checker
    period: float  # fraction of the image side: stripe period or checker cell
    noise_seed: int  # seeds the noise and blob fields


@dataclass(frozen=True)
class Scene:
    objects: tuple[ObjectSpec, ...]  # painted in order: later objects cover earlier ones
    background: BackgroundSpec
