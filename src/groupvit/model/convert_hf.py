"""Hugging Face `GroupViTModel` weights and configs -> ours.

Differences of the HF port bridged here (all verified by tests/test_model_equivalence_hf.py):
- separate q/k/v projections in every self-attention block (vision and text) -> fused `attn.qkv` (rows q, k, v);
  `out_proj` -> `proj`; layer_norm1/2 -> norm1/2; the grouping block is `downsample` -> `grouping`;
- the text position embedding is an nn.Embedding -> a [context, width] parameter (official layout);
- projection heads nn.Sequential(Linear, BN, ReLU, Linear) indices 0/1/3 -> fc1/norm/fc2 (same maths);
- no `multi_label_logit_scale` in the port: the loader keeps the model's initial value (logit_scale_init);
- `num_output_groups` has one entry per stage in HF ([64, 8, 8]); ours lists grouping stages only ([64, 8]);
- HF builds a stage's group projector from num_output_groups[i-1], the official code from num_group_tokens[i-1]:
  they agree for every released model (64 = 64); configs where they differ are refused;
- HF's logit scale is not clamped (ours clamps exp at logit_scale_max = 100: equal below ln 100 = 4.605);
- HF pools text at the first `eos_token_id`; we at argmax(ids), the same position when EOT is the largest id (CLIP);
- HF has no drop-path; our config keeps the official training settings (drop_path_rate 0.1, hard, Gumbel).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch

from .config import ImageEncoderConfig, ModelConfig, TextEncoderConfig
from .state_dict_utils import rename_keys

__all__ = ["HF_SENTINEL", "is_hf_state_dict", "convert_hf_state_dict", "model_config_from_hf"]

HF_SENTINEL = "vision_model.embeddings.patch_embeddings.projection.weight"

_STAGE = r"^vision_model\.encoder\.stages\.(\d+)\."
_VBLOCK = _STAGE + r"layers\.(\d+)\."
_TBLOCK = r"^text_model\.encoder\.layers\.(\d+)\."

# (HF name, our name) of every renamed weight, in matching order: {s} a stage, {b} a block; a name ending in "." is a
# prefix, any other an exact key. One table for both directions (export_hf renames ours -> HF with it).
NAMES: list[tuple[str, str]] = [
    ("vision_model.embeddings.position_embeddings", "image_encoder.pos_embed"),
    ("vision_model.embeddings.patch_embeddings.projection.", "image_encoder.patch_embed.proj."),
    ("vision_model.embeddings.layernorm.", "image_encoder.patch_embed.norm."),
    ("vision_model.encoder.stages.{s}.layers.{b}.layer_norm1.", "image_encoder.stages.{s}.blocks.{b}.norm1."),
    ("vision_model.encoder.stages.{s}.layers.{b}.layer_norm2.", "image_encoder.stages.{s}.blocks.{b}.norm2."),
    ("vision_model.encoder.stages.{s}.layers.{b}.self_attn.out_proj.",
     "image_encoder.stages.{s}.blocks.{b}.attn.proj."),
    ("vision_model.encoder.stages.{s}.layers.{b}.mlp.", "image_encoder.stages.{s}.blocks.{b}.mlp."),
    ("vision_model.encoder.stages.{s}.downsample.pre_assign_attn.attn.out_proj.",
     "image_encoder.stages.{s}.grouping.pre_assign_attn.attn.proj."),
    ("vision_model.encoder.stages.{s}.downsample.", "image_encoder.stages.{s}.grouping."),
    ("vision_model.encoder.stages.{s}.group_token", "image_encoder.stages.{s}.group_token"),
    ("vision_model.encoder.stages.{s}.group_projector.", "image_encoder.stages.{s}.group_projector."),
    ("vision_model.layernorm.", "image_encoder.norm."),
    ("text_model.embeddings.token_embedding.", "text_encoder.token_embedding."),
    ("text_model.embeddings.position_embedding.weight", "text_encoder.positional_embedding"),
    ("text_model.encoder.layers.{b}.layer_norm1.", "text_encoder.blocks.{b}.norm1."),
    ("text_model.encoder.layers.{b}.layer_norm2.", "text_encoder.blocks.{b}.norm2."),
    ("text_model.encoder.layers.{b}.self_attn.out_proj.", "text_encoder.blocks.{b}.attn.proj."),
    ("text_model.encoder.layers.{b}.mlp.", "text_encoder.blocks.{b}.mlp."),
    ("text_model.final_layer_norm.", "text_encoder.norm."),
    ("visual_projection.0.", "image_head.fc1."),
    ("visual_projection.1.", "image_head.norm."),
    ("visual_projection.3.", "image_head.fc2."),
    ("text_projection.0.", "text_head.fc1."),
    ("text_projection.1.", "text_head.norm."),
    ("text_projection.3.", "text_head.fc2."),
]


def _name_regex(template: str) -> str:
    parts = re.split(r"(\{[sb]\})", template)
    body = "".join(rf"(?P<{part[1]}>\d+)" if part in ("{s}", "{b}") else re.escape(part) for part in parts)
    return "^" + body + ("" if template.endswith(".") else "$")


def rename_table(to_ours: bool) -> list[tuple[str, str]]:
    """NAMES as rename_keys's (regex, replacement) table: HF -> ours, or ours -> HF."""
    pairs = NAMES if to_ours else [(ours, hf) for hf, ours in NAMES]
    return [(_name_regex(src), dst.replace("{s}", r"\g<s>").replace("{b}", r"\g<b>")) for src, dst in pairs]


_RENAMES = rename_table(to_ours=True)
_QKV = re.compile(
    r"^(?P<prefix>" + _VBLOCK[1:] + r"|" + _TBLOCK[1:] + r")self_attn\.(?P<which>[qkv])_proj\.(?P<kind>weight|bias)$"
)
_DEAD = ("text_model.embeddings.position_ids",)  # a buffer older HF versions saved


def is_hf_state_dict(sd: Mapping[str, Any]) -> bool:
    return HF_SENTINEL in sd


def _block_prefix(hf_prefix: str) -> str:
    m = re.match(_VBLOCK, hf_prefix)
    if m:
        return f"image_encoder.stages.{m.group(1)}.blocks.{m.group(2)}."
    m = re.match(_TBLOCK, hf_prefix)
    return f"text_encoder.blocks.{m.group(1)}."


def convert_hf_state_dict(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """HF GroupViTModel state dict -> our names and layouts (q/k/v fused)."""
    parts: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    rest: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        if key in _DEAD:
            continue
        m = _QKV.match(key)
        if m:
            parts.setdefault((m["prefix"], m["kind"]), {})[m["which"]] = value
        else:
            rest[key] = value
    out = rename_keys(rest, _RENAMES)
    for (prefix, kind), qkv in parts.items():
        if set(qkv) != {"q", "k", "v"}:
            raise ValueError(f"incomplete q/k/v projections under {prefix}: found {sorted(qkv)}")
        out[f"{_block_prefix(prefix)}attn.qkv.{kind}"] = torch.cat([qkv["q"], qkv["k"], qkv["v"]], dim=0)
    return out


# HF's defaults, for config.json files that omit them
_HF_VISION = dict(
    hidden_size=384, intermediate_size=1536, depths=[6, 3, 3], num_group_tokens=[64, 8, 0],
    num_output_groups=[64, 8, 8], num_attention_heads=6, image_size=224, patch_size=16, num_channels=3,
    hidden_act="gelu", layer_norm_eps=1e-5, assign_eps=1.0, assign_mlp_ratio=[0.5, 4],
)
_HF_TEXT = dict(
    vocab_size=49408, hidden_size=256, intermediate_size=1024, num_hidden_layers=12, num_attention_heads=4,
    max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5, eos_token_id=49407,
)
_HF_TOP = dict(projection_dim=256, projection_intermediate_dim=4096, logit_scale_init_value=2.6592)


def _as_dict(cfg: Any) -> dict:
    if isinstance(cfg, Mapping):
        return dict(cfg)
    if hasattr(cfg, "to_dict"):
        return cfg.to_dict()
    return dict(vars(cfg))


def model_config_from_hf(hf_config: Any) -> ModelConfig:
    """Our ModelConfig for an HF GroupViTConfig (object or config.json dict); refuses what we cannot reproduce."""
    top = {**_HF_TOP, **_as_dict(hf_config)}
    vis = {**_HF_VISION, **_as_dict(top.get("vision_config") or {})}
    txt = {**_HF_TEXT, **_as_dict(top.get("text_config") or {})}

    def pair(value: Any) -> int:
        if isinstance(value, (list, tuple)):
            if len(set(value)) != 1:
                raise ValueError(f"non-square image/patch size {value} is not supported")
            return int(value[0])
        return int(value)

    width, depths = int(vis["hidden_size"]), [int(d) for d in vis["depths"]]
    groups, outs = [int(g) for g in vis["num_group_tokens"]], [int(o) for o in vis["num_output_groups"]]
    if len(groups) != len(depths) or len(outs) != len(depths):
        raise ValueError(f"HF vision config: depths {depths}, num_group_tokens {groups}, num_output_groups {outs} "
                         "must have one entry per stage")
    for i in range(1, len(depths)):
        if groups[i] and groups[i - 1] and outs[i - 1] != groups[i - 1]:
            raise ValueError(
                f"HF stage {i} projects num_output_groups[{i - 1}]={outs[i - 1]} tokens but stage {i - 1} has "
                f"{groups[i - 1]} group tokens; the official model cannot express this"
            )
    checks = [
        (vis["hidden_act"] == "gelu", f"vision hidden_act {vis['hidden_act']!r} (need 'gelu')"),
        (txt["hidden_act"] == "quick_gelu", f"text hidden_act {txt['hidden_act']!r} (need 'quick_gelu')"),
        (float(vis["layer_norm_eps"]) == 1e-5 and float(txt["layer_norm_eps"]) == 1e-5, "layer_norm_eps != 1e-5"),
        (int(txt["intermediate_size"]) == 4 * int(txt["hidden_size"]), "text intermediate_size != 4 x hidden_size"),
        (int(txt["eos_token_id"]) == int(txt["vocab_size"]) - 1, "text eos_token_id is not the largest id"),
        (float(vis.get("dropout", 0.0)) == 0.0 and float(txt.get("dropout", 0.0)) == 0.0, "dropout > 0"),
    ]
    bad = [msg for ok, msg in checks if not ok]
    if bad:
        raise ValueError("HF GroupViT config not supported: " + "; ".join(bad))
    image = ImageEncoderConfig(
        image_size=pair(vis["image_size"]),
        patch_size=pair(vis["patch_size"]),
        in_chans=int(vis["num_channels"]),
        embed_dim=width,
        depths=depths,
        num_heads=int(vis["num_attention_heads"]),
        mlp_ratio=int(vis["intermediate_size"]) / width,
        num_group_tokens=groups,
        num_output_groups=[o for g, o in zip(groups, outs) if g > 0],
        assign_eps=float(vis["assign_eps"]),
        assign_mlp_ratio=[float(r) for r in vis["assign_mlp_ratio"]],
    )
    text = TextEncoderConfig(
        kind="transformer",
        context_length=int(txt["max_position_embeddings"]),
        vocab_size=int(txt["vocab_size"]),
        width=int(txt["hidden_size"]),
        layers=int(txt["num_hidden_layers"]),
        heads=int(txt["num_attention_heads"]),
    )
    return ModelConfig(
        image=image,
        text=text,
        proj_dim=int(top["projection_dim"]),
        proj_hidden=int(top["projection_intermediate_dim"]),
        logit_scale_init=float(top["logit_scale_init_value"]),
    )
