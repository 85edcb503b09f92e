"""The grouping block: merges image tokens into segment tokens by assigning every token to one group.

In the official order: LN on groups and tokens; a token-mixing MLP maps the G_in group tokens to G_out groups (then LN);
the groups cross-attend to the tokens; a single-head assignment attention with softmax over the GROUP axis gives each
image token a distribution over groups; in training Gumbel(0, 1) noise is added and (hard mode) the argmax one-hot
is used with a straight-through gradient; each group's row is divided by (its sum + eps); the groups gather the
values, get a residual with the projected groups, and an MLP. Gumbel noise and the one-hot are small modules that are
nn.Identity when disabled, so `forward` has no mode branches.
"""
from __future__ import annotations

import torch
from timm.layers import Mlp
from torch import nn

from .attention import CrossAttnBlock

__all__ = ["TokenMixingMlp", "GumbelNoise", "StraightThroughOneHot", "AssignAttention", "GroupingBlock"]


class TokenMixingMlp(Mlp):
    """An MLP over the token axis ([B, N_in, C] -> [B, N_out, C]), MLP-Mixer style: maps 64 groups to 8."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


class GumbelNoise(nn.Module):
    """(logits + Gumbel(0, 1)) / tau in training; the logits unchanged in eval (the official eval is noise-free)."""

    def __init__(self, tau: float = 1.0) -> None:
        super().__init__()
        self.tau = tau

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return logits
        gumbels = -torch.empty_like(logits).exponential_().log()  # -log(Exp(1)) ~ Gumbel(0, 1)
        return (logits + gumbels) / self.tau

    def extra_repr(self) -> str:
        return f"tau={self.tau}"


class StraightThroughOneHot(nn.Module):
    """One-hot of the argmax along `dim` in the forward pass, the soft probabilities' gradient in the backward pass.

    hard - stopgrad(soft) + soft: exactly one-hot values, so the grouping is a partition, yet the assignment logits
    (and through them the group tokens) still learn.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, soft: torch.Tensor) -> torch.Tensor:
        index = soft.argmax(dim=self.dim, keepdim=True)
        hard = torch.zeros_like(soft).scatter_(self.dim, index, 1.0)
        return hard - soft.detach() + soft


class AssignAttention(nn.Module):
    """Single-head assignment of image tokens (keys) to groups (queries), softmax over the group axis.

    Args:
        dim: token width.
        qkv_bias: bias on the q/k/v projections.
        hard: straight-through one-hot assignment (paper) or the soft assignment.
        gumbel: Gumbel noise on the logits in training.
        gumbel_tau: Gumbel-softmax temperature.
        assign_eps: added to each group's assignment sum before the row normalisation.
        logit_scale: multiplier on the assignment logits (official 1).

    Returns from forward: (new group features [B, G, C], soft assignment [B, G, N] (noise-free softmax, with
    gradient), hard assignment [B, G, N] (detached one-hot of the assignment used, Gumbel noise included)).
    """

    def __init__(
        self,
        dim: int,
        qkv_bias: bool = True,
        hard: bool = True,
        gumbel: bool = True,
        gumbel_tau: float = 1.0,
        assign_eps: float = 1.0,
        logit_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.scale = logit_scale * dim**-0.5
        self.assign_eps = assign_eps
        self.q_proj = nn.Linear(dim, dim, bias=qkv_bias)
        self.k_proj = nn.Linear(dim, dim, bias=qkv_bias)
        self.v_proj = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.noise = GumbelNoise(gumbel_tau) if gumbel else nn.Identity()
        self.discretize = StraightThroughOneHot(dim=1) if hard else nn.Identity()

    def forward(
        self, query: torch.Tensor, key: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        q, k = self.q_proj(query), self.k_proj(key)
        raw = (q @ k.transpose(-2, -1)) * self.scale  # [B, G, N]
        soft = raw.softmax(dim=1)
        noisy = self.noise(raw)
        attn = self.discretize(soft if noisy is raw else noisy.softmax(dim=1))
        weights = attn / (attn.sum(dim=-1, keepdim=True) + self.assign_eps)
        out = self.proj(weights @ self.v_proj(key))
        with torch.no_grad():  # the partition actually used, as a detached one-hot map (also in soft mode)
            hard = torch.zeros_like(attn).scatter_(1, attn.argmax(dim=1, keepdim=True), 1.0)
        return out, soft, hard


class GroupingBlock(nn.Module):
    """Merge [B, N, C] image tokens into [B, G_out, C] segment tokens guided by [B, G_in, C] group tokens.

    Args:
        dim: token width.
        num_heads: heads of the pre-assignment cross-attention.
        num_group_tokens: G_in, the group tokens of this stage.
        num_output_groups: G_out, the segments it outputs (token-mixing MLP G_in -> G_out).
        assign_mlp_ratio: (token-mixing hidden, channel MLP hidden) as multiples of dim; official (0.5, 4).
        mlp_ratio: MLP ratio of the pre-assignment cross-attention block (official 4).
        hard, gumbel, gumbel_tau, assign_eps: see AssignAttention.
        assign_logit_scale: AssignAttention's logit_scale.
        group_query_embed: add a learned per-output-group embedding (std 1) to the token-mixing MLP's output.
        act_layer, norm_layer: layer classes.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        num_group_tokens: int,
        num_output_groups: int,
        assign_mlp_ratio: tuple[float, float] = (0.5, 4.0),
        mlp_ratio: float = 4.0,
        hard: bool = True,
        gumbel: bool = True,
        gumbel_tau: float = 1.0,
        assign_eps: float = 1.0,
        assign_logit_scale: float = 1.0,
        group_query_embed: bool = False,
        act_layer: type[nn.Module] = nn.GELU,
        norm_layer: type[nn.Module] = nn.LayerNorm,
    ) -> None:
        super().__init__()
        tokens_dim, channels_dim = int(assign_mlp_ratio[0] * dim), int(assign_mlp_ratio[1] * dim)
        self.num_output_groups = num_output_groups
        self.norm_tokens = norm_layer(dim)
        self.mlp_inter = TokenMixingMlp(num_group_tokens, tokens_dim, num_output_groups, act_layer=act_layer)
        if group_query_embed:  # CPU option: a distinct learned identity per output group
            self.group_query = nn.Parameter(torch.randn(1, num_output_groups, dim))
        else:
            self.register_parameter("group_query", None)
        self.norm_post_tokens = norm_layer(dim)
        self.norm_x = norm_layer(dim)
        self.pre_assign_attn = CrossAttnBlock(
            dim, num_heads, mlp_ratio=mlp_ratio, act_layer=act_layer, norm_layer=norm_layer, post_norm=True
        )
        self.assign = AssignAttention(
            dim, hard=hard, gumbel=gumbel, gumbel_tau=gumbel_tau, assign_eps=assign_eps,
            logit_scale=assign_logit_scale,
        )
        self.norm_new_x = norm_layer(dim)
        self.mlp_channels = Mlp(dim, channels_dim, dim, act_layer=act_layer)

    def forward(
        self, x: torch.Tensor, group_tokens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (segments [B, G_out, C], soft assignment [B, G_out, N], hard one-hot assignment [B, G_out, N])."""
        group_tokens = self.norm_tokens(group_tokens)
        x = self.norm_x(x)
        groups = self.mlp_inter(group_tokens)
        if self.group_query is not None:
            groups = groups + self.group_query
        groups = self.norm_post_tokens(groups)
        groups = self.pre_assign_attn(groups, x)
        new_x, soft, hard = self.assign(groups, x)
        new_x = new_x + groups  # a segment = projected mean of its members + its group query (official)
        new_x = new_x + self.mlp_channels(self.norm_new_x(new_x))
        return new_x, soft, hard
