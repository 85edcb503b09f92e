"""Pure tensor functions that turn groups into class score maps (official `GroupViTSegInference.encode_decode`).

Steps, per window:
1. group -> class probabilities: softmax over classes of cosine x logit scale ("pre" probabilities);
2. top-k gate: the pooled image embedding's k most likely classes are kept, group logits outside them are
   masked to -inf and softmaxed again; the result is multiplied by the pre probabilities (as released);
3. pixel -> group: the pixel-to-group map is upsampled bilinearly to the crop and arg-maxed (one-hot);
4. pixel scores: each pixel takes its group's class probabilities; background channel = 1 where the pixel's
   best class score is below min(bg_thresh, best score of any group in the window), else 0.
Option (eval.background_prompts, not in the official code): a group closer to a background prompt than to every
class prompt is background (suppress_background_groups).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def group_class_probs(group_embeds: torch.Tensor, image_embed: torch.Tensor, text_embeds: torch.Tensor,
                      logit_scale: float, topk: int) -> torch.Tensor:
    """[B, G, C] class scores of each group.

    group_embeds [B, G, D] and image_embed [B, D] are re-normalised here (cheap, and it makes the function
    safe for callers that pass raw projections); text_embeds [C, D] are normalised.
    topk <= 0 disables the gate and returns the plain softmax (the official code has no off switch; with
    k >= C its formula would square the softmax, which is not a meaningful "off").
    """
    group_embeds = F.normalize(group_embeds.float(), dim=-1)
    image_embed = F.normalize(image_embed.float(), dim=-1)
    text_embeds = F.normalize(text_embeds.float(), dim=-1)
    logits = group_embeds @ text_embeds.t() * logit_scale  # [B, G, C]
    pre = logits.softmax(dim=-1)
    num_classes = text_embeds.shape[0]
    if topk <= 0:
        return pre
    image_probs = (image_embed @ text_embeds.t() * logit_scale).softmax(dim=-1)  # [B, C]
    keep_idx = image_probs.topk(min(topk, num_classes), dim=-1).indices
    keep = torch.zeros_like(image_probs, dtype=torch.bool).scatter_(1, keep_idx, True)
    gated = logits.masked_fill(~keep[:, None, :], float("-inf")).softmax(dim=-1)
    return gated * pre


def suppress_background_groups(group_probs: torch.Tensor, group_embeds: torch.Tensor, text_embeds: torch.Tensor,
                               background_embeds: torch.Tensor) -> torch.Tensor:
    """Zero the class scores [B, G, C] of every group whose embedding is closer (cosine) to one of the background
    prompts [P, D] than to every class prompt [C, D], so pixel_class_scores paints it background whatever the
    threshold. The other groups keep their scores, so eval.bg_thresh means the same with or without such prompts."""
    groups = F.normalize(group_embeds.float(), dim=-1)
    to_classes = (groups @ F.normalize(text_embeds.float(), dim=-1).t()).amax(dim=-1)  # [B, G]
    to_background = (groups @ F.normalize(background_embeds.float(), dim=-1).t()).amax(dim=-1)
    return group_probs.masked_fill((to_background > to_classes)[..., None], 0.0)


def upsampled_argmax(pixel_to_group: torch.Tensor, size: tuple[int, int],
                     max_elements: int = 1 << 24) -> torch.Tensor:
    """[B, H, W] index of the winning group after bilinear upsampling of [B, G, h, w] to `size`.

    Equivalent to argmax(interpolate(map)) but done in chunks of groups, so thousands of groups (the pixel-wise
    baseline at 448 px has 784) never materialise a [B, G, H, W] tensor. Ties keep the lowest index, as argmax.
    """
    b, g = pixel_to_group.shape[:2]
    chunk = max(1, max_elements // max(1, b * size[0] * size[1]))
    best_val = best_idx = None
    for start in range(0, g, chunk):
        up = F.interpolate(pixel_to_group[:, start:start + chunk].float(), size=size, mode="bilinear",
                           align_corners=False)
        val, idx = up.max(dim=1)
        idx = idx + start
        if best_val is None:
            best_val, best_idx = val, idx
        else:
            better = val > best_val
            best_val = torch.where(better, val, best_val)
            best_idx = torch.where(better, idx, best_idx)
    assert best_idx is not None, "pixel_to_group has no groups"
    return best_idx


def background_threshold(group_probs: torch.Tensor, bg_thresh: float,
                         group_valid: torch.Tensor | None = None) -> torch.Tensor:
    """[B] per-window threshold min(bg_thresh, best score of any (valid) group).

    The official code takes the max over all groups of the window, even groups that own no pixel; padded
    groups of the clustering baselines (group_valid False) are left out since they are not groups at all.
    """
    scores = group_probs.amax(dim=-1)  # [B, G]
    if group_valid is not None:
        scores = scores.masked_fill(~group_valid, float("-inf"))
    best = scores.amax(dim=-1)
    return torch.clamp(best, max=bg_thresh)


def pixel_class_scores(group_index: torch.Tensor, group_probs: torch.Tensor, bg_thresh: float,
                       group_valid: torch.Tensor | None = None) -> torch.Tensor:
    """[B, C+1, H, W] scores: channel 0 background (0/1), channels 1.. the owning group's class scores."""
    b = group_index.shape[0]
    batch = torch.arange(b, device=group_index.device)[:, None, None]
    fg = group_probs[batch, group_index]  # [B, H, W, C]
    thresh = background_threshold(group_probs, bg_thresh, group_valid)  # [B]
    bg = (fg.amax(dim=-1) < thresh[:, None, None]).to(fg.dtype)
    return torch.cat([bg.unsqueeze(-1), fg], dim=-1).permute(0, 3, 1, 2).contiguous()
