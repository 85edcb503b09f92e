"""Where groups come from: the GroupViT model itself, or (baselines.py) clusters of a plain ViT's tokens.

Both produce the same `Groups` record, so one scoring path (scoring.py) names every kind of segment the same way.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn


@dataclass
class Groups:
    """Segments of a batch of equally-sized crops.

    image_embed: [B, D] pooled image embedding (drives the top-k class gate).
    group_embeds: [B, G, D] one embedding per segment, in the text space.
    pixel_to_group: [B, G, h, w] pixel (token grid) -> segment scores; argmax after upsampling picks the owner.
    group_valid: [B, G] False for padding (baselines give different segment counts per image); None = all valid.
    stage_maps: per stage [B, G_s, h, w] pixel -> stage-s group maps (GroupViT only; for figures).
    """

    image_embed: torch.Tensor
    group_embeds: torch.Tensor
    pixel_to_group: torch.Tensor
    group_valid: torch.Tensor | None = None
    stage_maps: list[torch.Tensor] = field(default_factory=list)


class Grouper(Protocol):
    name: str

    def __call__(self, images: torch.Tensor) -> Groups: ...


def output_field(output: Any, name: str) -> Any:
    """Read a field of the model's GroupingOutput whether it is a dataclass, NamedTuple or dict."""
    if isinstance(output, dict):
        return output[name]
    return getattr(output, name)


class ModelGrouper:
    """GroupViT's learned groups: `model.encode_image_groups` with soft (official) or hard pixel maps, each segment
    named by its segment token (official) or by its members-only embedding (`embeds="members"`)."""

    def __init__(self, model: nn.Module, assignment: str = "soft", embeds: str = "segments") -> None:
        if assignment not in ("soft", "hard"):
            raise ValueError(f"assignment must be 'soft' or 'hard', got {assignment!r}")
        if embeds not in ("segments", "members"):
            raise ValueError(f"eval.segment_embeds must be 'segments' or 'members', got {embeds!r}")
        if not hasattr(model, "encode_image_groups"):
            raise TypeError("this model has no encode_image_groups (a plain ViT?): use a clustering baseline")
        self.model = model
        self.assignment = assignment
        self.embeds = embeds
        self.name = ("groupvit" if assignment == "soft" else "groupvit_hard") + ("_members" * (embeds == "members"))

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> Groups:
        out = self.model.encode_image_groups(images)
        suffix = "" if self.assignment == "soft" else "_hard"
        try:
            stages = list(output_field(out, "stage_assignments" + suffix))
        except (AttributeError, KeyError):
            stages = []
        group_embeds = output_field(out, "group_embeds" if self.embeds == "segments" else "member_embeds")
        if group_embeds is None:
            raise ValueError("eval.segment_embeds=members needs a model trained with model.image.member_embeds: true")
        return Groups(
            image_embed=output_field(out, "image_embed"),
            group_embeds=group_embeds,
            pixel_to_group=output_field(out, "pixel_to_group" + suffix),
            stage_maps=stages,
        )


def infer_patch_size(model: nn.Module) -> int:
    """The model's token stride in pixels, so crops can be padded to a whole number of tokens.

    Looks at the usual places (`patch_size`, a config's `image.patch_size`), else measures it with one small
    forward pass (64 px is a multiple of every power-of-two patch size this project uses).
    """
    for path in ("patch_size", "cfg.image.patch_size", "config.image.patch_size", "model_cfg.image.patch_size",
                 "image_encoder.patch_size", "visual.patch_size"):
        obj: Any = model
        try:
            for part in path.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            continue
        if isinstance(obj, (tuple, list)):
            obj = obj[0]
        if isinstance(obj, int) and obj > 0:
            return obj
    from groupvit.evaluation.text import model_device

    probe = torch.zeros(1, 3, 64, 64, device=model_device(model))
    with torch.no_grad():
        if hasattr(model, "encode_image_groups"):
            grid_h = output_field(model.encode_image_groups(probe), "pixel_to_group").shape[-2]
        else:
            grid_h = model.encode_image_tokens(probe)[1][0]
    return max(1, 64 // int(grid_h))
