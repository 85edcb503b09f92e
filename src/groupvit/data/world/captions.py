"""Captions: natural sentences that name every object's class, and nothing that is not there.

A caption is first PLANNED (frame, mention order, which attribute words each mention carries, an optional
relation, an optional background phrase), then REALISED against a scene. The split matters for hard
negatives: a twin re-realises its original's plan against a scene with one class changed, so the two
captions differ in exactly that noun (plus "a"/"an" when the article must follow it).

Attribute words are shortcuts a model can use instead of learning shapes (colour words above all), so each is
drawn per mention at its configured rate, and a word is only written when it is true of every object the mention
covers.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from groupvit.data.world.config import CaptionConfig
from groupvit.data.world.shapes import SHAPE_NAMES, get_shape
from groupvit.data.world.spec import BACKGROUND_WORDS, TEXTURE_WORDS, Scene

RICH_FRAMES: tuple[str, ...] = (
    "{objects}.",
    "a photo of {objects}.",
    "an image of {objects}.",
    "a picture of {objects}.",
    "a drawing of {objects}.",
    "a rendering of {objects}.",
    "a close-up photo of {objects}.",
    "there {be} {objects}.",
    "this image shows {objects}.",
    "this picture contains {objects}.",
    "in this image you can see {objects}.",
    "a simple illustration of {objects}.",
    "a synthetic scene with {objects}.",
)
SIMPLE_FRAMES: tuple[str, ...] = ("a photo of {objects}.",)
COUNT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
# nouns and words read with a leading vowel sound take "an"
_VOWEL_SOUND = re.compile(r"^([aeiou]|lshape|xshape)")


@dataclass(frozen=True)
class Mention:
    """A noun phrase naming one class: the objects it covers and which attribute words it may carry."""

    objects: tuple[int, ...]  # indices into scene.objects, all of one class
    colour: bool
    size: bool
    texture: bool


@dataclass(frozen=True)
class CaptionPlan:
    frame: str
    mentions: tuple[Mention, ...]  # caption order
    relation: str | None  # spatial word between mentions[0] and mentions[1] ("above", "left of", ...)
    background: bool  # append "on a <kind> background"


def size_word(size: float, size_range: list[float] | tuple[float, float]) -> str | None:
    """"small" / "large" for the lower / upper third of the configured size range, nothing in between."""
    lo, hi = size_range
    third = (hi - lo) / 3
    if size < lo + third:
        return "small"
    if size > hi - third:
        return "large"
    return None


def relation_word(scene: Scene, a: int, b: int) -> str:
    """Where object a lies relative to object b, by their centres (image y grows downwards)."""
    (ax, ay), (bx, by) = scene.objects[a].center, scene.objects[b].center
    dx, dy = ax - bx, ay - by
    if abs(dy) > 1.5 * abs(dx):
        return "above" if dy < 0 else "below"
    if abs(dx) > 1.5 * abs(dy):
        return "left of" if dx < 0 else "right of"
    return "next to"


def plan_caption(cfg: CaptionConfig, scene: Scene, rng: np.random.Generator) -> CaptionPlan:
    """Draw a caption plan for `scene`; the same generator state gives the same plan."""
    frames = RICH_FRAMES if cfg.template_set == "rich" else SIMPLE_FRAMES
    frame = frames[int(rng.integers(len(frames)))]
    groups: list[tuple[int, ...]] = []
    if cfg.count_words:
        by_class: dict[str, list[int]] = {}
        for k, o in enumerate(scene.objects):
            by_class.setdefault(o.cls, []).append(k)
        groups = [tuple(v) for v in by_class.values()]
    else:
        groups = [(k,) for k in range(len(scene.objects))]
    order = rng.permutation(len(groups)).tolist()
    groups = [groups[i] for i in order]
    relation = None
    singles = [i for i, g in enumerate(groups) if len(g) == 1]
    if rng.random() < cfg.relation_rate and len(singles) >= 2:
        i, j = (int(x) for x in rng.choice(singles, size=2, replace=False))
        rest = [g for n, g in enumerate(groups) if n not in (i, j)]
        groups = [groups[i], groups[j], *rest]
        relation = relation_word(scene, groups[0][0], groups[1][0])
    mentions = tuple(
        Mention(objects=g, colour=bool(u[0] < cfg.colour_word_rate), size=bool(u[1] < cfg.size_word_rate),
                texture=bool(u[2] < cfg.texture_word_rate))
        for g, u in zip(groups, rng.random((len(groups), 3)))
    )
    background = bool(rng.random() < cfg.background_word_rate)
    return CaptionPlan(frame=frame, mentions=mentions, relation=relation, background=background)


def _shared(values: list[str | None]) -> str | None:
    return values[0] if values and all(v == values[0] for v in values) else None


def _mention_text(m: Mention, scene: Scene, size_range: list[float]) -> tuple[str, str]:
    objs = [scene.objects[k] for k in m.objects]
    words: list[str] = []
    if m.size:
        words.append(_shared([size_word(o.size, size_range) for o in objs]) or "")
    if m.colour:
        words.append(_shared([o.colour for o in objs]) or "")
    if m.texture:
        words.append(_shared([TEXTURE_WORDS.get(o.texture) for o in objs]) or "")
    shape = get_shape(objs[0].cls)
    noun = shape.name if len(objs) == 1 else shape.plural
    words = [w for w in words if w] + [noun]
    if len(objs) == 1:
        det = "an" if _VOWEL_SOUND.match(words[0]) else "a"
    else:
        det = COUNT_WORDS[len(objs)] if len(objs) < len(COUNT_WORDS) else str(len(objs))
    return " ".join([det, *words]), shape.name


def _join(parts: list[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def realise(plan: CaptionPlan, scene: Scene, size_range: list[float]) -> tuple[str, list[str]]:
    """The caption text and its class nouns (singular, unique, in caption order)."""
    texts, nouns = [], []
    for m in plan.mentions:
        text, noun = _mention_text(m, scene, size_range)
        texts.append(text)
        if noun not in nouns:
            nouns.append(noun)
    if plan.relation is not None:
        texts = [f"{texts[0]} {plan.relation} {texts[1]}", *texts[2:]]
    objects = _join(texts)
    if plan.background:
        objects += f" on a {BACKGROUND_WORDS[scene.background.kind]} background"
    be = "is" if len(plan.mentions[0].objects) == 1 else "are"
    return plan.frame.format(objects=objects, be=be), nouns


_WORD = re.compile(r"[a-z]+")


def class_words(caption: str) -> list[str]:
    """The class nouns a caption contains, singular, in order (plural forms mapped back via the registry).
    Tests use it to check that captions name exactly what the mask holds."""
    lookup = {name: name for name in SHAPE_NAMES} | {get_shape(n).plural: n for n in SHAPE_NAMES}
    return [lookup[w] for w in _WORD.findall(caption.lower()) if w in lookup]
