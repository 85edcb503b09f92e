"""GroupViT's training losses (open_clip style: a module built with rank/world size, returning named terms).

- Image-text contrastive: symmetric InfoNCE of local rows against the columns of all ranks, mean of both directions.
- Multi-label contrastive with text prompting: each image has K noun prompts [B, K, D]. Image -> text: soft-target
  cross-entropy over all gathered prompts with weight 1/K on each own prompt; two forms:
  `mean_log` (official code): -mean_k log p_k;  `log_sum` (paper, eq. 4): -log sum_k p_k.
  Text -> image: one-hot cross-entropy of each prompt over all gathered images. Its own logit scale.
- total = contrastive_weight * contrastive + multi_label_weight * multi_label (+ group_usage_weight * group_usage).
Embeddings arrive L2-normalised and the scales exp'ed and clamped (the model's forward does both).

Two CPU-scale options, off in the paper recipe (see docs/embedded-world.md for why they exist):
- multi_label_pooling="groups": the image side of the multi-label loss scores each prompt with the image's BEST
  segment (max over the final groups) instead of the pooled embedding, so every named object must be captured and
  named by one group, which is exactly what zero-shot segmentation reads out. multi_label_pooling="members" does the
  same with the segments' members-only copies (model image.member_embeds): the best segment must name the noun from
  its pixels alone, without its group query, which carries the whole image (docs/embedded-world.md);
  member_multi_label_weight > 0 adds that members-pooled term beside the official one instead of replacing it.
- merge_duplicate_texts: identical texts in a batch (frequent when captions come from templates over a small
  vocabulary, and for noun prompts with one template) are one positive, not a positive and its own negatives: an
  image's loss sums the probability of every copy of its text, and a text's loss every image that owns a copy.
- group_usage_weight > 0: minus the normalised entropy of each image's mean assignment over groups, per stage,
  which counters the collapse of all tokens into one or two groups seen on small data.
- assign_logit_spread_weight > 0: the variance across groups of each token's assignment logits (read from the
  log of the noise-free soft assignment, which differs from the logits by a per-token constant), averaged over
  tokens, images and stages. Every training that stayed on the loss plateau had saturated its stage-1 softmax by
  step 300; a saturated softmax passes ~0 gradient, so the entropy-based group-usage term cannot undo it, while this
  term's gradient grows with the logits. Near-uniform assignments (logit spread ~0.1) make it ~0.
- segment_contrast_weight > 0: within each image, each noun prompt is a softmax over that image's segments whose
  target is its currently best segment (detached), so the image's OTHER segments are pushed away from the noun.
  Without it nothing stops every segment from carrying the whole image (measured: background segments named as the
  object); with Gumbel-random training partitions the only way to lower it is segment features that follow their
  members, which is what the zero-shot readout needs. segment_contrast_embeds="members" ranks the members-only copies
  instead (model image.member_embeds), so the target is the segment whose pixels look most like the noun.
"""
from __future__ import annotations

import math
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from .distributed import gather_features, gather_keys

__all__ = [
    "GroupViTLoss", "assign_logit_spread_loss", "contrastive_loss", "group_usage_loss", "multi_label_loss",
    "segment_contrast_loss", "MULTI_LABEL_FORMS", "MULTI_LABEL_POOLINGS",
]

MULTI_LABEL_FORMS = ("mean_log", "log_sum")
MULTI_LABEL_POOLINGS = ("image", "groups", "members")


class LossSettings(Protocol):
    """What the loss reads from groupvit.train.config.LossConfig (duck-typed: the model library does not import
    the trainer)."""

    contrastive_weight: float
    multi_label_weight: float
    multi_label_form: str
    multi_label_pooling: str
    group_usage_weight: float
    assign_logit_spread_weight: float
    merge_duplicate_texts: bool
    segment_contrast_weight: float
    member_multi_label_weight: float
    segment_contrast_embeds: str


def _positive_log_prob(logits: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """log of the softmax probability mass on the positive columns, per row."""
    return torch.logsumexp(logits.masked_fill(~positive, float("-inf")), dim=-1) - torch.logsumexp(logits, dim=-1)


def contrastive_loss(
    image_embed: torch.Tensor, text_embed: torch.Tensor, logit_scale: torch.Tensor, rank: int = 0, world_size: int = 1,
    text_key: torch.Tensor | None = None,
) -> torch.Tensor:
    """Symmetric InfoNCE; the positives of local row i are global column rank * B + i, and with `text_key` [B]
    (ids of identical texts) also every column whose text equals row i's."""
    batch = image_embed.shape[0]
    all_image = gather_features(image_embed, world_size)
    all_text = gather_features(text_embed, world_size)
    labels = torch.arange(batch, device=image_embed.device) + rank * batch
    image_logits = logit_scale * image_embed @ all_text.t()
    text_logits = logit_scale * text_embed @ all_image.t()
    if text_key is None:
        return 0.5 * (F.cross_entropy(image_logits, labels) + F.cross_entropy(text_logits, labels))
    positive = text_key[:, None] == gather_keys(text_key, world_size)[None, :]  # [B, W*B], own column included
    loss_image = -_positive_log_prob(image_logits, positive).mean()
    loss_text = -_positive_log_prob(text_logits, positive).mean()
    return 0.5 * (loss_image + loss_text)


def multi_label_loss(
    image_embed: torch.Tensor,
    prompt_embed: torch.Tensor,
    logit_scale: torch.Tensor,
    form: str = "mean_log",
    rank: int = 0,
    world_size: int = 1,
    group_embed: torch.Tensor | None = None,
    prompt_key: torch.Tensor | None = None,
) -> torch.Tensor:
    """Multi-label image <-> prompt loss. image_embed [B, D], prompt_embed [B, K, D]; with group_embed [B, G, D]
    an image's similarity to a prompt is its best group's (max over G) instead of its pooled embedding's; with
    prompt_key [B, K] (ids of identical prompts) every copy of a prompt counts as that prompt."""
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
    if prompt_key is None:
        own_log_p = log_p.view(batch, -1, k)[torch.arange(batch, device=log_p.device), own]  # [B, K]
    else:
        all_keys = gather_keys(prompt_key, world_size)  # [W*B, K]
        copies = prompt_key[:, :, None] == all_keys.reshape(1, 1, -1)  # [B, K, W*B*K]
        own_log_p = torch.logsumexp(log_p[:, None, :].masked_fill(~copies, float("-inf")), dim=-1)
    if form == "mean_log":
        loss_image = -own_log_p.mean(dim=-1).mean()
    else:
        loss_image = -torch.logsumexp(own_log_p, dim=-1).mean()
    if prompt_key is None:
        loss_text = F.cross_entropy(logit_scale * prompt_to_image, own.repeat_interleave(k))
    else:
        owners = (prompt_key.reshape(-1, 1, 1) == all_keys[None]).any(dim=-1)  # [B*K, W*B]
        loss_text = -_positive_log_prob(logit_scale * prompt_to_image, owners).mean()
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


def segment_contrast_loss(group_embed: torch.Tensor, prompt_embed: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each image's noun prompts [B, K, D] over that image's segments [B, G, D], each prompt's target
    being its most similar segment (detached): one segment per noun, the others pushed away from it."""
    logits = logit_scale * torch.einsum("bkd,bgd->bkg", prompt_embed, group_embed)
    target = logits.detach().argmax(dim=-1)
    return F.cross_entropy(logits.flatten(0, 1), target.flatten())


class GroupViTLoss(nn.Module):
    """Args:
        cfg: a LossConfig (contrastive_weight, multi_label_weight, multi_label_form); None = paper defaults.
        rank: this process's rank.
        world_size: processes; >1 gathers negatives from all of them (differentiably).

    forward(**model_output) -> dict(loss, contrastive, multi_label); the multi-label term is 0 (not computed) when
    prompts are absent or its weight is 0. Unknown keys of the model output are ignored.
    """

    def __init__(self, cfg: LossSettings | None = None, rank: int = 0, world_size: int = 1) -> None:
        super().__init__()
        self.contrastive_weight = float(getattr(cfg, "contrastive_weight", 1.0))
        self.multi_label_weight = float(getattr(cfg, "multi_label_weight", 1.0))
        self.multi_label_form = str(getattr(cfg, "multi_label_form", "mean_log"))
        if self.multi_label_form not in MULTI_LABEL_FORMS:
            raise ValueError(f"loss.multi_label_form must be one of {MULTI_LABEL_FORMS}, got {self.multi_label_form!r}")
        self.multi_label_pooling = str(getattr(cfg, "multi_label_pooling", "image"))
        if self.multi_label_pooling not in MULTI_LABEL_POOLINGS:
            raise ValueError(
                f"loss.multi_label_pooling must be one of {MULTI_LABEL_POOLINGS}, got {self.multi_label_pooling!r}"
            )
        self.group_usage_weight = float(getattr(cfg, "group_usage_weight", 0.0))
        self.assign_logit_spread_weight = float(getattr(cfg, "assign_logit_spread_weight", 0.0))
        self.segment_contrast_weight = float(getattr(cfg, "segment_contrast_weight", 0.0))
        self.member_multi_label_weight = float(getattr(cfg, "member_multi_label_weight", 0.0))
        self.segment_contrast_embeds = str(getattr(cfg, "segment_contrast_embeds", "segments"))
        if self.segment_contrast_embeds not in ("segments", "members"):
            raise ValueError(
                f"loss.segment_contrast_embeds must be segments or members, got {self.segment_contrast_embeds!r}"
            )
        self.merge_duplicate_texts = bool(getattr(cfg, "merge_duplicate_texts", False))
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"invalid rank {rank} / world_size {world_size}")
        self.rank = rank
        self.world_size = world_size

    @property
    def model_kwargs(self) -> dict[str, bool]:
        """What the model's forward must add to its output for this loss (the training loop passes it on)."""
        kwargs = {"with_groups": self.multi_label_pooling != "image" or self.group_usage_weight > 0
                  or self.assign_logit_spread_weight > 0 or self.segment_contrast_weight > 0
                  or self.member_multi_label_weight > 0}
        if self.merge_duplicate_texts:
            kwargs["with_text_keys"] = True
        return kwargs

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
        text_key: torch.Tensor | None = None,
        prompt_key: torch.Tensor | None = None,
        **_: Any,
    ) -> dict[str, torch.Tensor]:
        if not self.merge_duplicate_texts:
            text_key = prompt_key = None
        contrastive = contrastive_loss(image_embed, text_embed, logit_scale, self.rank, self.world_size, text_key)
        use_multi = prompt_embed is not None and self.multi_label_weight > 0 and prompt_embed.shape[1] > 0
        if use_multi:
            scale = multi_label_logit_scale if multi_label_logit_scale is not None else logit_scale
            # a plain ViT has no segments: every pooling falls back to its image embedding (as the baselines train)
            groups = {"image": None, "groups": group_embed, "members": member_embed}[self.multi_label_pooling]
            if self.multi_label_pooling == "members" and group_embed is not None and member_embed is None:
                raise ValueError("loss.multi_label_pooling=members needs model.image.member_embeds: true")
            multi = multi_label_loss(
                image_embed, prompt_embed, scale, self.multi_label_form, self.rank, self.world_size, groups, prompt_key
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
        if self.member_multi_label_weight > 0 and use_multi and group_embed is not None:  # a GroupViT
            if member_embed is None:
                raise ValueError("loss.member_multi_label_weight > 0 needs model.image.member_embeds: true")
            terms["member_multi_label"] = multi_label_loss(
                image_embed, prompt_embed, scale, self.multi_label_form, self.rank, self.world_size, member_embed,
                prompt_key,
            )
            loss = loss + self.member_multi_label_weight * terms["member_multi_label"]
        ranked = group_embed if self.segment_contrast_embeds == "segments" else member_embed
        if self.segment_contrast_weight > 0 and use_multi and ranked is not None:
            terms["segment_contrast"] = segment_contrast_loss(ranked, prompt_embed, scale)
            loss = loss + self.segment_contrast_weight * terms["segment_contrast"]
        return {"loss": loss, **terms}
