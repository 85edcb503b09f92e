"""The paper's official GroupViT readout (soft assignment maps, segments named by their segment tokens) and the
second scored model that reads a study's main variant out with it when the preset's own readout differs; the
class gates every evaluation also scores.

Torch-free: the workflow's target lists (workflow/rules/common.smk) and the report's table code import it.
"""
from __future__ import annotations

import dataclasses

OFFICIAL_GROUPER = "official_readout"  # `groupvit evaluate --grouper` name; the scored model is MAIN_<this>
OFFICIAL_READOUT = {"assignment": "soft", "segment_embeds": "segments"}
# Tighter image-level class gates (eval.topk_classes) that each evaluation also scores: the released code keeps the
# top 5 of the pooled embedding's classes, a real gate among VOC's 20 classes and almost none among a few.
CLASS_GATES = (1, 2)
MIN_SHARE = 0.02  # readout_stats: a group counts as used in an image when it owns at least this share of the pixels


def official_eval(ev):
    """An EvalConfig with the official maps and segment embeddings; everything else (background prompts and
    thresholds, prompts, resize) stays the given one's."""
    return dataclasses.replace(ev, **OFFICIAL_READOUT)


def is_official(ev) -> bool:
    return all(getattr(ev, key) == value for key, value in OFFICIAL_READOUT.items())


def official_readout_model(cfg) -> str | None:
    """The name of the main variant scored a second time with the official readout, or None when the main variant
    is not a GroupViT or already reads out the official way (the `paper` preset)."""
    main = cfg.study.main_variant
    if main not in cfg.study.variants or cfg.variants[main].family != "groupvit":
        return None
    return None if is_official(cfg.for_variant(main).eval) else f"{main}_{OFFICIAL_GROUPER}"
