"""The cross-field rules of a ModelConfig: sizes that must divide each other and lists that must match the stages.

Torch-free, so that the config loader checks them when it reads a preset, and build_model checks them again for a
config that never went through the loader (a converted checkpoint, a config made in code).
"""
from __future__ import annotations

from typing import Any

CLIP_VOCAB_SIZE = 49408

__all__ = ["CLIP_VOCAB_SIZE", "check_model_rules", "stage_output_groups"]


def stage_output_groups(cfg: Any) -> list[int]:
    """Output segments per stage (0 for stages without grouping) of an ImageEncoderConfig.

    num_output_groups lists one entry per grouping stage ([64, 8]); one entry per stage (the HF convention,
    [64, 8, 8]) is accepted too and the entries of non-grouping stages are ignored.
    """
    n_stages = len(cfg.depths)
    if len(cfg.num_group_tokens) != n_stages:
        raise ValueError(
            f"image.num_group_tokens has {len(cfg.num_group_tokens)} entries but image.depths has {n_stages}: "
            "give one group-token count per stage (0 = no grouping in that stage)"
        )
    grouping = [i for i, g in enumerate(cfg.num_group_tokens) if g > 0]
    if len(cfg.num_output_groups) == len(grouping):
        outs = list(cfg.num_output_groups)
    elif len(cfg.num_output_groups) == n_stages:
        outs = [cfg.num_output_groups[i] for i in grouping]
    else:
        raise ValueError(
            f"image.num_output_groups has {len(cfg.num_output_groups)} entries; expected one per grouping stage "
            f"({len(grouping)}, stages {grouping})"
        )
    result = [0] * n_stages
    for i, g in zip(grouping, outs):
        result[i] = g
    return result


def check_model_rules(cfg: Any) -> None:
    """Raise ValueError naming the `model.*` fields of a ModelConfig that do not fit together."""
    im, tx = cfg.image, cfg.text
    if im.image_size % im.patch_size:
        raise ValueError(f"model.image.image_size {im.image_size} is not a multiple of patch_size {im.patch_size}")
    if im.stem == "conv" and im.patch_size % (2 ** len(im.stem_channels)):
        raise ValueError(
            f"model.image.patch_size {im.patch_size} must be divisible by 2**len(stem_channels) "
            f"= {2 ** len(im.stem_channels)} for the conv stem"
        )
    if im.embed_dim % im.num_heads:
        raise ValueError(f"model.image.embed_dim {im.embed_dim} is not divisible by num_heads {im.num_heads}")
    if im.grouping and not any(stage_output_groups(im)):  # also checks the list lengths
        raise ValueError("model.image.grouping=True needs at least one stage with group tokens (num_group_tokens)")
    if tx.kind == "transformer" and tx.width % tx.heads:
        raise ValueError(f"model.text.width {tx.width} is not divisible by heads {tx.heads}")
    if tx.kind in ("transformer", "bow") and tx.vocab_size < CLIP_VOCAB_SIZE:
        raise ValueError(f"model.text.vocab_size {tx.vocab_size} < {CLIP_VOCAB_SIZE}: the CLIP BPE tokenizer's ids")
