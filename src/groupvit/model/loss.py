"""GroupViT's training losses (open_clip style: a module built with rank/world size, returning named terms).

- Image-text contrastive: symmetric InfoNCE of local rows against the columns of all ranks, mean of both directions.
- Multi-label contrastive with text prompting: each image has K noun prompts [B, K, D]. Image -> text: soft-target
  cross-entropy over all gathered prompts with weight 1/K on each own prompt; two forms:
  `mean_log` (official code): -mean_k log p_k;  `log_sum` (paper, eq. 4): -log sum_k p_k.
  Text -> image: one-hot cross-entropy of each prompt over all gathered images. Its own logit scale.
- total = contrastive_weight * contrastive + multi_label_weight * multi_label
  (+ group_usage_weight * group_usage + assign_logit_spread_weight * assign_logit_spread).
Embeddings arrive L2-normalised and the scales exp'ed and clamped (the model's forward does both).

LossConfig (groupvit.model.config) holds the settings and their defaults (the paper's); three CPU levers, off in the paper recipe:
- multi_label_pooling="members": the image side of the multi-label loss scores each prompt with the image's best
  members-only segment (model image.member_embeds) instead of the pooled embedding, so a segment must name its noun
  from its own pixels.
- group_usage_weight > 0: one minus the normalised entropy of each image's mean assignment over groups, per stage;
  counters the collapse of all tokens into one or two groups.
- assign_logit_spread_weight > 0: the variance across groups of each token's assignment logits (read from the log
  of the noise-free soft assignment, which differs from the logits by a per-token constant), averaged over tokens,
  images and stages. It keeps the stage-1 softmax from saturating, where the straight-through gradient (and so the
  group-usage term's) vanishes; near-uniform assignments make it ~0.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .config import LossConfig
from .distributed import gather_features

__all__ = [
    "GroupViTLoss", "LossConfig", "assign_logit_spread_loss", "contrastive_loss", "group_usage_loss",
    "multi_label_loss", "MULTI_LABEL_FORMS", "MULTI_LABEL_POOLINGS",
]

MULTI_LABEL_FORMS = ("mean_log", "log_sum")
MULTI_LABEL_POOLINGS = ("image", "members")


def contrastive_loss(
    image_embed: torch.Tensor, text_embed: torch.Tensor, logit_scale: torch.Tensor, rank: int = 0, world_size: int = 1,
) -> torch.Tensor:
    """Symmetric InfoNCE; the positive of local row i is global column rank * B + i."""
    batch = image_embed.shape[0]
    all_image = gather_features(image_embed, world_size)
    all_text = gather_features(text_embed, world_size)
    labels = torch.arange(batch, device=image_embed.device) + rank * batch
    image_logits = logit_scale * image_embed @ all_text.t()
    text_logits = logit_scale * text_embed @ all_image.t()
    return 0.5 * (F.cross_entropy(image_logits, labels) + F.cross_entropy(text_logits, labels))


def multi_label_loss(
    image_embed: torch.Tensor,
    prompt_embed: torch.Tensor,
    logit_scale: torch.Tensor,
    form: str = "mean_log",
    rank: int = 0,
    world_size: int = 1,
    group_embed: torch.Tensor | None = None,
) -> torch.Tensor:
    """Multi-label image <-> prompt loss. image_embed [B, D], prompt_embed [B, K, D]; with group_embed [B, G, D]
    an image's similarity to a prompt is its best group's (max over G) instead of its pooled embedding's."""
    if form not in MULTI_LABEL_FORMS:
        raise ValueError(f"multi_label_form must be one of {MULTI_LABEL_FORMS}, got {form!r}")
    if prompt_embed.ndim != 3 or prompt_embed.shape[0] != image_embed.shape[0]:
        raise ValueError(
            f"prompt_embed must be [B, K, D] with B = {image_embed.shape[0]}, got {tuple(prompt_embed.shape)}"
        )
    batch, k, dim = prompt_embed.shape
    prompts = prompt_embed.reshape(batch * k, dim)
    all_prompts = gather_features(prompts, world_size)  # [W*B*K, D], image j's prompts at j*K .. j*K+K-1
    all_images = gather_features(image_embed, world_size)  # [W*B, D]
    own = torch.arange(batch, device=image_embed.device) + rank * batch

    if group_embed is None:
        image_to_prompt = image_embed @ all_prompts.t()  # [B, W*B*K]
        prompt_to_image = prompts @ all_images.t()  # [B*K, W*B]
    else:
        all_groups = gather_features(group_embed, world_size)  # [W*B, G, D]
        image_to_prompt = torch.einsum("bgd,nd->bgn", group_embed, all_prompts).amax(dim=1)
        prompt_to_image = torch.einsum("nd,mgd->nmg", prompts, all_groups).amax(dim=-1)
    log_p = F.log_softmax(logit_scale * image_to_prompt, dim=-1)  # [B, W*B*K]
    own_log_p = log_p.view(batch, -1, k)[torch.arange(batch, device=log_p.device), own]  # [B, K]
    if form == "mean_log":
        loss_image = -own_log_p.mean(dim=-1).mean()
    else:
        loss_image = -torch.logsumexp(own_log_p, dim=-1).mean()
    loss_text = F.cross_entropy(logit_scale * prompt_to_image, own.repeat_interleave(k))
    return 0.5 * (loss_image + loss_text)


def group_usage_loss(soft_assignments: list[torch.Tensor]) -> torch.Tensor:
    """1 - normalised entropy of each image's group usage (its tokens' mean soft assignment), averaged over images
    and stages: 0 when an image spreads its tokens evenly over all groups, 1 when all go to one group."""
    terms = []
    for attn in soft_assignments:  # [B, G, N], softmax over G
        usage = attn.mean(dim=-1).clamp_min(1e-8)  # [B, G]
        entropy = -(usage * usage.log()).sum(dim=-1) / math.log(attn.shape[1])
        terms.append(1.0 - entropy.mean())
    return torch.stack(terms).mean()


def assign_logit_spread_loss(soft_assignments: list[torch.Tensor]) -> torch.Tensor:
    """Mean over stages, images and tokens of the variance across groups of the assignment logits; log(softmax) has
    the logits' spread and a gradient (one-hot minus softmax) that does not vanish when the softmax saturates."""
    terms = []
    for attn in soft_assignments:  # [B, G, N], softmax over G
        logits = attn.float().clamp_min(1e-30).log()
        terms.append(logits.var(dim=1, unbiased=False).mean())
    return torch.stack(terms).mean()


class GroupViTLoss(nn.Module):
    """Args:
        cfg: a LossConfig; None = the paper's loss.
        rank: this process's rank.
        world_size: processes; >1 gathers negatives from all of them (differentiably).

    forward(**model_output) -> dict(loss, contrastive, multi_label, and each enabled CPU term); the multi-label term
    is 0 (not computed) when prompts are absent or its weight is 0. Unknown keys of the model output are ignored.
    """

    def __init__(self, cfg: LossConfig | None = None, rank: int = 0, world_size: int = 1) -> None:
        super().__init__()
        cfg = cfg if cfg is not None else LossConfig()
        if cfg.multi_label_form not in MULTI_LABEL_FORMS:
            raise ValueError(f"loss.multi_label_form must be one of {MULTI_LABEL_FORMS}, got {cfg.multi_label_form!r}")
        if cfg.multi_label_pooling not in MULTI_LABEL_POOLINGS:
            raise ValueError(
                f"loss.multi_label_pooling must be one of {MULTI_LABEL_POOLINGS}, got {cfg.multi_label_pooling!r}"
            )
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"invalid rank {rank} / world_size {world_size}")
        self.contrastive_weight = float(cfg.contrastive_weight)
        self.multi_label_weight = float(cfg.multi_label_weight)
        self.multi_label_form = cfg.multi_label_form
        self.multi_label_pooling = cfg.multi_label_pooling
        self.group_usage_weight = float(cfg.group_usage_weight)
        self.assign_logit_spread_weight = float(cfg.assign_logit_spread_weight)
        self.rank = rank
        self.world_size = world_size

    @property
    def model_kwargs(self) -> dict[str, bool]:
        """What the model's forward must add to its output for this loss (the training loop passes it on)."""
        return {"with_groups": self.multi_label_pooling != "image" or self.group_usage_weight > 0
                or self.assign_logit_spread_weight > 0}

    def forward(
        self,
        image_embed: torch.Tensor,
        text_embed: torch.Tensor,
        logit_scale: torch.Tensor,
        prompt_embed: torch.Tensor | None = None,
        multi_label_logit_scale: torch.Tensor | None = None,
        group_embed: torch.Tensor | None = None,
        member_embed: torch.Tensor | None = None,
        soft_assignments: list[torch.Tensor] | None = None,
        **_: Any,
    ) -> dict[str, torch.Tensor]:
        contrastive = contrastive_loss(image_embed, text_embed, logit_scale, self.rank, self.world_size)
        use_multi = prompt_embed is not None and self.multi_label_weight > 0 and prompt_embed.shape[1] > 0
        if use_multi:
            scale = multi_label_logit_scale if multi_label_logit_scale is not None else logit_scale
            # a plain ViT has no segments: it falls back to its image embedding (as the baselines train)
            groups = member_embed if self.multi_label_pooling == "members" else None
            if self.multi_label_pooling == "members" and group_embed is not None and member_embed is None:
                raise ValueError("loss.multi_label_pooling=members needs model.image.member_embeds: true")
            multi = multi_label_loss(
                image_embed, prompt_embed, scale, self.multi_label_form, self.rank, self.world_size, groups
            )
        else:
            multi = contrastive.new_zeros(())
        loss = self.contrastive_weight * contrastive + self.multi_label_weight * multi
        terms = {"contrastive": contrastive, "multi_label": multi}
        if self.group_usage_weight > 0 and soft_assignments:
            terms["group_usage"] = group_usage_loss(soft_assignments)
            loss = loss + self.group_usage_weight * terms["group_usage"]
        if self.assign_logit_spread_weight > 0 and soft_assignments:
            terms["assign_logit_spread"] = assign_logit_spread_loss(soft_assignments)
            loss = loss + self.assign_logit_spread_weight * terms["assign_logit_spread"]
        return {"loss": loss, **terms}
