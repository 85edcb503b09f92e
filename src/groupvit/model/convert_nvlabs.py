"""Official NVlabs/GroupViT checkpoints ('model' key) -> our names and layouts.

Our image encoder keeps the official block and grouping names (timm's Block uses norm1 / attn.qkv / attn.proj / norm2
/ mlp.fc1 / mlp.fc2, as the official AttnBlock), so the image side is a prefix rename: img_encoder.layers.i ->
image_encoder.stages.i and `downsample` -> `grouping`. The text side maps CLIP's ResidualAttentionBlock
(ln_1, attn.in_proj_weight [3W, W] fused q/k/v in that order, attn.out_proj, ln_2, mlp.c_fc, mlp.c_proj) onto timm
blocks, and the heads' Conv1d(k=1) weights [out, in, 1] are squeezed to Linear [out, in].
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from .state_dict_utils import rename_keys

__all__ = ["NVLABS_SENTINEL", "is_nvlabs_state_dict", "convert_nvlabs_state_dict"]

NVLABS_SENTINEL = "img_encoder.patch_embed.proj.weight"

_RES = r"^text_encoder\.transformer\.resblocks\.(\d+)\."
_RENAMES: list[tuple[str, str]] = [
    (r"^img_encoder\.layers\.(\d+)\.downsample\.", r"image_encoder.stages.\1.grouping."),
    (r"^img_encoder\.layers\.(\d+)\.", r"image_encoder.stages.\1."),
    (r"^img_encoder\.", "image_encoder."),
    (_RES + r"ln_1\.", r"text_encoder.blocks.\1.norm1."),
    (_RES + r"ln_2\.", r"text_encoder.blocks.\1.norm2."),
    (_RES + r"attn\.in_proj_(weight|bias)$", r"text_encoder.blocks.\1.attn.qkv.\2"),
    (_RES + r"attn\.out_proj\.", r"text_encoder.blocks.\1.attn.proj."),
    (_RES + r"mlp\.c_fc\.", r"text_encoder.blocks.\1.mlp.fc1."),
    (_RES + r"mlp\.c_proj\.", r"text_encoder.blocks.\1.mlp.fc2."),
    (r"^text_encoder\.ln_final\.", "text_encoder.norm."),
    (r"^img_projector\.linear_hidden\.0\.", "image_head.fc1."),
    (r"^img_projector\.linear_hidden\.1\.", "image_head.norm."),
    (r"^img_projector\.linear_out\.", "image_head.fc2."),
    (r"^text_projector\.linear_hidden\.0\.", "text_head.fc1."),
    (r"^text_projector\.linear_hidden\.1\.", "text_head.norm."),
    (r"^text_projector\.linear_out\.", "text_head.fc2."),
]
_HEAD_WEIGHTS = ("image_head.fc1.weight", "image_head.fc2.weight", "text_head.fc1.weight", "text_head.fc2.weight")


def is_nvlabs_state_dict(sd: Mapping[str, Any]) -> bool:
    return NVLABS_SENTINEL in sd


def convert_nvlabs_state_dict(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official GroupViT state dict -> our names; Conv1d head weights squeezed to Linear."""
    out = rename_keys(sd, _RENAMES)
    for key in _HEAD_WEIGHTS:
        if key in out and out[key].ndim == 3:
            out[key] = out[key].squeeze(-1)
    return out
