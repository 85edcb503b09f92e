"""GroupViTModel: image encoder (grouping or plain ViT) + text encoder + projection heads + logit scales.

The forward returns a dict whose keys are GroupViTLoss's keyword arguments (open_clip's model/loss split). Captions
and their noun prompts go through the text tower and head in ONE batch, as in the official code, so the heads'
BatchNorm statistics in training cover both. Capabilities follow the image encoder: a grouping model has
`encode_image_groups`, a plain ViT has `encode_image_tokens`; the other attribute does not exist (hasattr is False),
which is how evaluation tells the two families apart.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .attention import set_attn_impl
from .config import ModelConfig
from .heads import ProjectionHead
from .image_encoder import GroupViTImageEncoder
from .outputs import GroupingOutput, assignments_to_grid
from .text_encoder import build_text_encoder
from .tokenizer import Tokenizer, build_tokenizer
from .vit import ViTImageEncoder

__all__ = ["GroupViTModel"]


class GroupViTModel(nn.Module):
    """Args:
        cfg: ModelConfig (image, text, heads, logit scales, attention implementation).
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.is_grouping = bool(cfg.image.grouping)
        encoder_cls = GroupViTImageEncoder if self.is_grouping else ViTImageEncoder
        self.image_encoder = encoder_cls(cfg.image)
        self.text_encoder = build_text_encoder(cfg.text)
        self.image_head = ProjectionHead(self.image_encoder.num_features, cfg.proj_hidden, cfg.proj_dim)
        self.text_head = ProjectionHead(self.text_encoder.width, cfg.proj_hidden, cfg.proj_dim)
        self.logit_scale = nn.Parameter(torch.tensor(float(cfg.logit_scale_init)))
        self.multi_label_logit_scale = nn.Parameter(torch.tensor(float(cfg.logit_scale_init)))
        self.tokenizer: Tokenizer = build_tokenizer(cfg.text)
        set_attn_impl(self, cfg.attn_impl)

    @property
    def patch_size(self) -> int:
        return self.cfg.image.patch_size

    def _scale(self, param: torch.Tensor) -> torch.Tensor:
        return param.exp().clamp(max=self.cfg.logit_scale_max)

    # ---- image -------------------------------------------------------------------------------------------------
    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] -> [B, D] normalised (H, W multiples of the patch size; other sizes resample positions)."""
        return F.normalize(self.image_head(self.image_encoder(image).pooled), dim=-1)

    def project_image(self, features: torch.Tensor) -> torch.Tensor:
        """Image-encoder features [..., C] ([B, C] or [B, N, C]) -> normalised joint-space embeddings [..., D]."""
        lead = features.shape[:-1]
        out = self.image_head(features.reshape(-1, features.shape[-1]))
        return F.normalize(out.reshape(*lead, out.shape[-1]), dim=-1)

    def _encode_image_groups(self, image: torch.Tensor) -> GroupingOutput:
        out = self.image_encoder(image)
        soft = assignments_to_grid(out.soft_assignments, out.grid)
        hard = assignments_to_grid(out.hard_assignments, out.grid)
        return GroupingOutput(
            image_embed=self.project_image(out.pooled),
            group_embeds=self.project_image(out.tokens),
            pixel_to_group=soft[-1],
            pixel_to_group_hard=hard[-1],
            stage_assignments=soft,
            stage_assignments_hard=hard,
            member_embeds=None if out.member_tokens is None else self.project_image(out.member_tokens),
        )

    def _encode_image_tokens(self, image: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        out = self.image_encoder(image)
        return out.tokens, out.grid

    @property
    def encode_image_groups(self):
        """(GroupViT only) image -> GroupingOutput: embeddings, group embeddings and soft/hard pixel->group maps."""
        if not self.is_grouping:
            raise AttributeError("encode_image_groups needs a grouping image encoder (image.grouping=True)")
        return self._encode_image_groups

    @property
    def encode_image_tokens(self):
        """(plain ViT only) image -> ([B, N, C] final-normed patch tokens, (h, w)); GroupViT merges its patches."""
        if self.is_grouping:
            raise AttributeError("encode_image_tokens needs a plain ViT image encoder (image.grouping=False)")
        return self._encode_image_tokens

    # ---- text --------------------------------------------------------------------------------------------------
    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """[..., L] token ids -> [..., D] normalised."""
        return F.normalize(self.text_head(self.text_encoder(tokens)), dim=-1)

    # ---- training ----------------------------------------------------------------------------------------------
    def forward(
        self, image: torch.Tensor, text: torch.Tensor, prompts: torch.Tensor | None = None, with_groups: bool = False,
    ) -> dict[str, Any]:
        """image [B, 3, H, W], text [B, L], prompts [B, K, L] -> the loss's keyword arguments.

        with_groups (GroupViT only; asked for by losses that score segments): also `group_embed` [B, G, D] (the
        final segments, projected in the same head pass as the pooled embedding), `soft_assignments` (per stage)
        and, with image.member_embeds, `member_embed` [B, G, D] (the segments' members-only copies, same pass).
        """
        out: dict[str, Any] = {"logit_scale": self._scale(self.logit_scale)}
        if with_groups and self.is_grouping:
            encoded = self.image_encoder(image)
            parts = [encoded.pooled[:, None], encoded.tokens]
            if encoded.member_tokens is not None:
                parts.append(encoded.member_tokens)
            joint = self.project_image(torch.cat(parts, dim=1))
            groups = encoded.tokens.shape[1]
            out |= {"image_embed": joint[:, 0], "group_embed": joint[:, 1 : 1 + groups],
                    "soft_assignments": encoded.soft_assignments}
            if encoded.member_tokens is not None:
                out["member_embed"] = joint[:, 1 + groups :]
        else:
            out["image_embed"] = self.encode_image(image)
        if prompts is None or prompts.shape[1] == 0:
            out["text_embed"] = self.encode_text(text)
            return out
        if prompts.ndim != 3 or prompts.shape[0] != text.shape[0] or prompts.shape[-1] != text.shape[-1]:
            raise ValueError(f"prompts must be [B, K, L] matching text {tuple(text.shape)}, got {tuple(prompts.shape)}")
        both = self.encode_text(torch.cat([text.unsqueeze(1), prompts], dim=1))  # [B, 1 + K, D]
        out["text_embed"] = both[:, 0]
        out["prompt_embed"] = both[:, 1:]
        out["multi_label_logit_scale"] = self._scale(self.multi_label_logit_scale)
        return out
