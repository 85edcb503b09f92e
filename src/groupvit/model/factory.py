"""build_model: a ModelConfig (or its dict form) -> GroupViTModel, after checks that name the offending field."""
from __future__ import annotations

import math

from .attention import ATTN_IMPLS
from .config import ModelConfig, model_config_from_dict
from .dual_encoder import GroupViTModel
from .rules import check_model_rules

__all__ = ["build_model", "validate_model_config"]


def validate_model_config(cfg: ModelConfig) -> None:
    """Raise ValueError for an architecture that cannot be built, naming the field (before any layer is made): the
    values the layers accept here, the rules between fields in groupvit.model.rules (which the config loader runs)."""
    im, tx = cfg.image, cfg.text
    if im.stem not in ("linear", "conv"):
        raise ValueError(f"model.image.stem must be 'linear' or 'conv', got {im.stem!r}")
    if im.assign_value_init not in ("trunc_normal", "identity"):
        raise ValueError(f"model.image.assign_value_init must be 'trunc_normal' or 'identity', got {im.assign_value_init!r}")
    if len(im.assign_mlp_ratio) != 2:
        raise ValueError(f"model.image.assign_mlp_ratio must have 2 entries, got {im.assign_mlp_ratio}")
    if tx.kind not in ("transformer", "bow", "minilm"):
        raise ValueError(f"model.text.kind must be 'transformer', 'bow' or 'minilm', got {tx.kind!r}")
    if cfg.attn_impl not in ATTN_IMPLS:
        raise ValueError(f"model.attn_impl must be one of {ATTN_IMPLS}, got {cfg.attn_impl!r}")
    check_model_rules(cfg)
    if not math.isfinite(cfg.logit_scale_init) or cfg.logit_scale_max <= 0:
        raise ValueError("model.logit_scale_init must be finite and model.logit_scale_max > 0")


def build_model(cfg: ModelConfig | dict) -> GroupViTModel:
    """Build the dual encoder a config describes (train mode, freshly initialised)."""
    if isinstance(cfg, dict):
        cfg = model_config_from_dict(cfg)
    validate_model_config(cfg)
    return GroupViTModel(cfg)
