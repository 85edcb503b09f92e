"""build_model: a ModelConfig (or its dict form) -> GroupViTModel, after checks that name the offending field."""
from __future__ import annotations

import math

from .attention import ATTN_IMPLS
from .config import ModelConfig, model_config_from_dict
from .dual_encoder import GroupViTModel
from .image_encoder import stage_output_groups

__all__ = ["build_model", "validate_model_config"]

CLIP_VOCAB_SIZE = 49408


def validate_model_config(cfg: ModelConfig) -> None:
    """Raise ValueError for an architecture that cannot be built, naming the field (before any layer is made)."""
    im, tx = cfg.image, cfg.text
    if im.stem not in ("linear", "conv"):
        raise ValueError(f"model.image.stem must be 'linear' or 'conv', got {im.stem!r}")
    if im.image_size % im.patch_size:
        raise ValueError(f"model.image.image_size {im.image_size} is not a multiple of patch_size {im.patch_size}")
    if im.stem == "conv" and im.patch_size % (2 ** len(im.stem_channels)):
        raise ValueError(
            f"model.image.patch_size {im.patch_size} must be divisible by 2**len(stem_channels) "
            f"= {2 ** len(im.stem_channels)} for the conv stem"
        )
    if im.embed_dim % im.num_heads:
        raise ValueError(f"model.image.embed_dim {im.embed_dim} is not divisible by num_heads {im.num_heads}")
    if im.assign_value_init not in ("trunc_normal", "identity"):
        raise ValueError(f"model.image.assign_value_init must be 'trunc_normal' or 'identity', got {im.assign_value_init!r}")
    if len(im.assign_mlp_ratio) != 2:
        raise ValueError(f"model.image.assign_mlp_ratio must have 2 entries, got {im.assign_mlp_ratio}")
    if im.grouping:
        outs = stage_output_groups(im)  # checks the list lengths
        if not any(outs):
            raise ValueError("model.image.grouping=True needs at least one stage with group tokens (num_group_tokens)")
    if tx.kind not in ("transformer", "bow", "minilm"):
        raise ValueError(f"model.text.kind must be 'transformer', 'bow' or 'minilm', got {tx.kind!r}")
    if tx.kind == "transformer" and tx.width % tx.heads:
        raise ValueError(f"model.text.width {tx.width} is not divisible by heads {tx.heads}")
    if tx.kind in ("transformer", "bow") and tx.vocab_size < CLIP_VOCAB_SIZE:
        raise ValueError(f"model.text.vocab_size {tx.vocab_size} < {CLIP_VOCAB_SIZE}: the CLIP BPE tokenizer's ids")
    if cfg.attn_impl not in ATTN_IMPLS:
        raise ValueError(f"model.attn_impl must be one of {ATTN_IMPLS}, got {cfg.attn_impl!r}")
    if not math.isfinite(cfg.logit_scale_init) or cfg.logit_scale_max <= 0:
        raise ValueError("model.logit_scale_init must be finite and model.logit_scale_max > 0")


def build_model(cfg: ModelConfig | dict) -> GroupViTModel:
    """Build the dual encoder a config describes (train mode, freshly initialised)."""
    if isinstance(cfg, dict):
        cfg = model_config_from_dict(cfg)
    validate_model_config(cfg)
    return GroupViTModel(cfg)
