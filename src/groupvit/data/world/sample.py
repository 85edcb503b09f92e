"""One sample from its (seed, split, index) alone, so any worker can make any sample and the world's bytes do
not depend on how the work was split.

Hard negatives: a train sample drawn as a twin copies the previous sample's scene and caption plan and swaps
one object's class (see scene.swap_one_shape). Twin chains are cut every MAX_TWIN_CHAIN + 1 indices, so
building any sample re-samples at most that many predecessors; the draw probability is scaled up to make up
for the cut indices, so the realised twin fraction is hard_negative_rate (up to 0.9) less the few swaps that
fail the layout rules (about 6% of them; the data card counts the twins actually made).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from groupvit.data.world.captions import CaptionPlan, plan_caption, realise
from groupvit.data.world.config import WorldConfig
from groupvit.data.world.render import Rendered, render_scene
from groupvit.data.world.scene import sample_scene, swap_one_shape
from groupvit.data.world.spec import Scene

SPLIT_IDS: dict[str, int] = {"train": 0, "val": 1, "eval": 2}
MAX_TWIN_CHAIN = 9
_SCENE_STREAM, _TWIN_DECISION_STREAM, _TWIN_SWAP_STREAM = 0, 1, 2


@dataclass(frozen=True)
class Record:
    """Everything needed to render a sample and write its caption."""

    split: str
    index: int
    scene: Scene
    plan: CaptionPlan
    hard_negative_of: int | None  # index of the sample this one is a twin of


def sample_key(index: int) -> str:
    """9-digit zero-padded: sortable, dot-free (webdataset splits keys at the first dot)."""
    return f"{index:09d}"


def sample_rng(cfg: WorldConfig, split: str, index: int, stream: int = _SCENE_STREAM) -> np.random.Generator:
    return np.random.default_rng([cfg.seed, SPLIT_IDS[split], index, stream])


def wants_twin(cfg: WorldConfig, split: str, index: int) -> bool:
    """Whether this index is drawn as a hard negative of its predecessor (train only)."""
    if split != "train" or cfg.hard_negative_rate <= 0 or index % (MAX_TWIN_CHAIN + 1) == 0:
        return False
    p = cfg.hard_negative_rate * (MAX_TWIN_CHAIN + 1) / MAX_TWIN_CHAIN  # the cut indices' share goes elsewhere
    return bool(sample_rng(cfg, split, index, _TWIN_DECISION_STREAM).random() < p)


def _fresh(cfg: WorldConfig, split: str, index: int) -> Record:
    rng = sample_rng(cfg, split, index)
    scene = sample_scene(cfg, rng)
    return Record(split, index, scene, plan_caption(cfg.caption, scene, rng), None)


def build_record(cfg: WorldConfig, split: str, index: int, previous: Record | None = None) -> Record:
    """The record of sample `index`; pass the predecessor's record when at hand to skip rebuilding it."""
    if not wants_twin(cfg, split, index):
        return _fresh(cfg, split, index)
    if previous is None or previous.index != index - 1 or previous.split != split:
        previous = build_record(cfg, split, index - 1)
    swapped = swap_one_shape(cfg, previous.scene, sample_rng(cfg, split, index, _TWIN_SWAP_STREAM))
    if swapped is None:  # no swap keeps the layout rules: this index becomes an ordinary sample
        return _fresh(cfg, split, index)
    return Record(split, index, swapped[0], previous.plan, previous.index)


def class_index(cfg: WorldConfig) -> dict[str, int]:
    """Label of each class in masks: classes[i] -> i + 1 (0 is background)."""
    return {name: i + 1 for i, name in enumerate(cfg.classes)}


def metadata(cfg: WorldConfig, record: Record, rendered: Rendered) -> dict:
    """The per-sample json (train) / annotations.jsonl line (val, eval). Objects are listed bottom to top."""
    caption, nouns = realise(record.plan, record.scene, cfg.object_size)
    objects = [
        {
            "class": o.cls,
            "colour": o.colour,
            "rgb": list(o.rgb),
            "texture": o.texture,
            "size": round(o.size, 4),
            "center": [round(o.center[0], 4), round(o.center[1], 4)],
            "rotation": round(o.rotation, 2),
            "visible_fraction": round(rendered.visible_fraction[k], 4),
            "pixels": int((rendered.instance_mask == k + 1).sum()),
        }
        for k, o in enumerate(record.scene.objects)
    ]
    return {
        "key": sample_key(record.index),
        "caption": caption,
        "nouns": nouns,
        "objects": objects,
        "background": record.scene.background.kind,
        "hard_negative_of": None if record.hard_negative_of is None else sample_key(record.hard_negative_of),
        "split": record.split,
        "image_size": cfg.image_size,
    }


def render_record(cfg: WorldConfig, record: Record) -> tuple[Rendered, dict]:
    rendered = render_scene(record.scene, cfg.image_size, class_index(cfg))
    return rendered, metadata(cfg, record, rendered)


def render_sample(cfg: WorldConfig, split: str, index: int) -> tuple[Image.Image, np.ndarray, dict]:
    """(RGB image, class mask uint8, metadata) of one sample, exactly as the generator writes it."""
    rendered, meta = render_record(cfg, build_record(cfg, split, index))
    return Image.fromarray(rendered.image, "RGB"), rendered.class_mask, meta
