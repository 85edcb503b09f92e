"""Typed outputs of the image encoders and of `GroupViTModel.encode_image_groups`, and the stage-map algebra.

A stage's assignment maps its input tokens to its groups ([B, G_s, N_s]); stage 1's inputs are the h x w patch
tokens, stage s's inputs are stage s-1's groups. Chaining the transposed maps gives every stage's groups as maps on
the patch grid, which is what zero-shot segmentation upsamples (the official inference multiplies the SOFT maps).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["ImageEncoderOutput", "GroupingOutput", "assignments_to_grid"]


@dataclass
class ImageEncoderOutput:
    """pooled: [B, C] mean of the final-normed tokens; tokens: [B, T, C] final-normed segment tokens (GroupViT) or
    patch tokens (ViT); grid: the patch grid (h, w); soft/hard_assignments: per grouping stage [B, G_s, N_s];
    member_tokens: [B, G, C] members-only copy of the final segments (image.member_embeds; else None)."""

    pooled: torch.Tensor
    tokens: torch.Tensor
    grid: tuple[int, int]
    soft_assignments: list[torch.Tensor] = field(default_factory=list)
    hard_assignments: list[torch.Tensor] = field(default_factory=list)
    member_tokens: torch.Tensor | None = None


@dataclass
class GroupingOutput:
    """What zero-shot segmentation needs from GroupViT (see docs/architecture.md, "Model contract").

    image_embed: [B, D] normalised; group_embeds: [B, G, D] normalised projected segment tokens; pixel_to_group:
    [B, G, h, w] product of all stages' soft assignments on the token grid; pixel_to_group_hard: the same with the
    hard (one-hot) assignments; stage_assignments / stage_assignments_hard: per stage [B, G_s, h, w];
    member_embeds: [B, G, D] normalised members-only segment embeddings (image.member_embeds; else None).
    """

    image_embed: torch.Tensor
    group_embeds: torch.Tensor
    pixel_to_group: torch.Tensor
    pixel_to_group_hard: torch.Tensor
    stage_assignments: list[torch.Tensor]
    stage_assignments_hard: list[torch.Tensor]
    member_embeds: torch.Tensor | None = None


def assignments_to_grid(assignments: list[torch.Tensor], grid: tuple[int, int]) -> list[torch.Tensor]:
    """Chain per-stage [B, G_s, N_s] assignments into per-stage [B, G_s, h, w] maps on the patch grid."""
    maps: list[torch.Tensor] = []
    pixel_to_group: torch.Tensor | None = None  # [B, h*w, G_s]
    for attn in assignments:
        step = attn.transpose(1, 2)
        pixel_to_group = step if pixel_to_group is None else pixel_to_group @ step
        b, n, g = pixel_to_group.shape
        maps.append(pixel_to_group.transpose(1, 2).reshape(b, g, *grid))
    return maps
