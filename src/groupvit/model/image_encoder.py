"""The grouping image encoder: stages of transformer blocks over [image tokens; group tokens], each (but the last,
usually) closed by a grouping block that merges the tokens into segments.

Stage s runs depths[s] blocks over [tokens; num_group_tokens[s] group tokens], then its grouping block maps the
tokens to num_output_groups segments, which are the next stage's tokens. A stage after a grouping stage gets its group
tokens as a zero-initialised parameter plus a projection (LN + token-mixing MLP) of the previous stage's group tokens
after that stage's blocks. The 2-stage paper model is depths [6, 3, 3], group tokens [64, 8, 0], outputs [64, 8];
the 1-stage one depths [6, 6], group tokens [64, 0], outputs [8]: two configs of one class.
"""
from __future__ import annotations

import torch
from timm.layers import trunc_normal_
from torch import nn

from .attention import make_block
from .config import ImageEncoderConfig
from .grouping import GroupingBlock, TokenMixingMlp
from .outputs import ImageEncoderOutput
from .patch_embed import PatchTokenEncoder
from .rules import stage_output_groups

__all__ = [
    "GroupingStage", "GroupViTImageEncoder", "init_vit_weights", "local_attention_mask", "stage_output_groups",
]


def init_vit_weights(module: nn.Module) -> None:
    """Official init: trunc-normal(.02) Linear weights with zero bias, unit LayerNorm."""
    if isinstance(module, nn.Linear):
        trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def local_attention_mask(grid: tuple[int, int], num_group_tokens: int, radius: int, device=None) -> torch.Tensor:
    """Additive mask [N + G, N + G] over [image tokens; group tokens]: image token i sees image token j only within
    Chebyshev distance `radius` on the grid, and no group token; group tokens see everything."""
    h, w = grid
    rows = torch.arange(h, device=device).repeat_interleave(w)
    cols = torch.arange(w, device=device).repeat(h)
    near = ((rows[:, None] - rows[None, :]).abs() <= radius) & ((cols[:, None] - cols[None, :]).abs() <= radius)
    n = h * w
    allowed = torch.ones(n + num_group_tokens, n + num_group_tokens, dtype=torch.bool, device=device)
    allowed[:n, :n] = near
    allowed[:n, n:] = False
    mask = torch.zeros(allowed.shape, device=device)
    return mask.masked_fill(~allowed, float("-inf"))


class GroupingStage(nn.Module):
    """Blocks over [tokens; group tokens], then (with group tokens) a grouping block.

    Args:
        dim: token width.
        depth: transformer blocks.
        num_heads: attention heads.
        num_group_tokens: group tokens of this stage (0: plain blocks, no grouping).
        num_output_groups: segments out of the grouping block.
        num_prev_group_tokens: group tokens of the previous stage (>0: project them into this stage's tokens).
        drop_path: per-block stochastic depth rates (len == depth).
        group_token_init_std: init std of a first grouping stage's group tokens (official 0.02).
        projected_group_token_init_std: init std of a later stage's additive group tokens (official 0: zeros).
        block_kwargs: mlp_ratio, qkv_bias, act_layer, norm_layer for the blocks.
        grouping_kwargs: extra GroupingBlock arguments (hard, gumbel, gumbel_tau, assign_eps, assign_mlp_ratio).
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        num_group_tokens: int,
        num_output_groups: int,
        num_prev_group_tokens: int,
        drop_path: list[float],
        group_token_init_std: float = 0.02,
        projected_group_token_init_std: float = 0.0,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        act_layer: type[nn.Module] = nn.GELU,
        norm_layer: type[nn.Module] = nn.LayerNorm,
        **grouping_kwargs,
    ) -> None:
        super().__init__()
        self.num_group_tokens = num_group_tokens
        self.blocks = nn.ModuleList(
            make_block(dim, num_heads, mlp_ratio, qkv_bias, dp, act_layer=act_layer, norm_layer=norm_layer)
            for dp in drop_path
        )
        self.group_projector: nn.Module | None = None
        self.grouping: GroupingBlock | None = None
        if num_group_tokens:
            self.group_token = nn.Parameter(torch.zeros(1, num_group_tokens, dim))
            if num_prev_group_tokens:
                # zero-init token + projection of the previous stage's group tokens (official)
                self.group_projector = nn.Sequential(
                    norm_layer(dim),
                    TokenMixingMlp(num_prev_group_tokens, dim // 2, num_group_tokens, act_layer=act_layer),
                )
                if projected_group_token_init_std > 0:
                    trunc_normal_(self.group_token, std=projected_group_token_init_std)
            else:
                trunc_normal_(self.group_token, std=group_token_init_std)
            self.grouping = GroupingBlock(
                dim, num_heads, num_group_tokens, num_output_groups, mlp_ratio=mlp_ratio,
                act_layer=act_layer, norm_layer=norm_layer, **grouping_kwargs,
            )
        else:
            self.register_parameter("group_token", None)

    def forward(
        self, x: torch.Tensor, prev_group_tokens: torch.Tensor | None, attn_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None, torch.Tensor]:
        """Returns (tokens out, this stage's group tokens after the blocks, soft, hard assignment, the stage's input
        tokens after its blocks, i.e. what the grouping block merged).
        attn_mask: an additive mask over [tokens; group tokens] (local_attention_mask) for every block."""
        num_groups = self.num_group_tokens
        if self.group_token is not None:
            groups = self.group_token.expand(x.shape[0], -1, -1)
            if self.group_projector is not None:
                if prev_group_tokens is None:
                    raise ValueError("this stage projects the previous stage's group tokens, but none were given")
                groups = groups + self.group_projector(prev_group_tokens)
            x = torch.cat([x, groups], dim=1)
        for blk in self.blocks:
            x = blk(x, attn_mask=attn_mask)
        if self.group_token is None:
            return x, None, None, None, x
        tokens, groups = x[:, :-num_groups], x[:, -num_groups:]
        x, soft, hard = self.grouping(tokens, groups)
        return x, groups, soft, hard, tokens


class GroupViTImageEncoder(PatchTokenEncoder):
    """Patch embedding + grouping stages + final LN + mean pool.

    Args:
        cfg: ImageEncoderConfig (depths, widths, heads, group tokens and segments per stage, hard/soft, Gumbel, ...).
        act_layer: activation of every MLP (GELU).
        norm_layer: normalisation layer class (torch LayerNorm, eps 1e-5, as the official model).
    """

    def __init__(
        self, cfg: ImageEncoderConfig, act_layer: type[nn.Module] = nn.GELU, norm_layer: type[nn.Module] = nn.LayerNorm
    ) -> None:
        super().__init__(cfg, norm_layer)
        dim = cfg.embed_dim
        outs = stage_output_groups(cfg)
        dpr = torch.linspace(0, cfg.drop_path_rate, max(sum(cfg.depths), 1)).tolist()
        stages, start = [], 0
        for i, depth in enumerate(cfg.depths):
            stages.append(
                GroupingStage(
                    dim, depth, cfg.num_heads, cfg.num_group_tokens[i], outs[i],
                    cfg.num_group_tokens[i - 1] if i > 0 else 0,
                    dpr[start : start + depth], cfg.group_token_init_std, cfg.projected_group_token_init_std,
                    cfg.mlp_ratio, cfg.qkv_bias, act_layer, norm_layer,
                    hard=cfg.hard_assignment, gumbel=cfg.gumbel, gumbel_tau=cfg.gumbel_tau,
                    assign_eps=cfg.assign_eps, assign_mlp_ratio=tuple(cfg.assign_mlp_ratio),
                    assign_logit_scale=cfg.assign_logit_scale, group_query_embed=cfg.group_query_embed,
                )
            )
            start += depth
        self.stages = nn.ModuleList(stages)
        self.norm = norm_layer(dim)
        self.hard_assignment = cfg.hard_assignment
        self.first_stage_token_radius = cfg.first_stage_token_radius
        self.member_norm = norm_layer(dim) if cfg.member_embeds else None
        self._init_modules(cfg.assign_value_init)

    def _init_modules(self, assign_value_init: str = "trunc_normal") -> None:
        for name, module in self.named_modules():
            if not name.startswith("patch_embed.stem"):
                init_vit_weights(module)
        if assign_value_init == "identity":  # segments start as the weighted mean of their tokens (CPU option)
            for stage in self.stages:
                if stage.grouping is not None:
                    nn.init.eye_(stage.grouping.assign.v_proj.weight)
                    nn.init.eye_(stage.grouping.assign.proj.weight)

    def member_tokens(self, tokens: torch.Tensor, soft_maps: list[torch.Tensor], hard_maps: list[torch.Tensor]
                      ) -> torch.Tensor:
        """[B, G, C]: patch-grid tokens [B, N, C] averaged over each final segment's members.

        The composed assignment is the partition actually used (Gumbel noise included) with the noise-free soft
        assignment's gradient (straight-through, like the grouping itself); soft-assignment models compose the soft
        maps. Rows are divided by (count + 1) like the grouping block's (assign_eps 1), so an empty group stays ~0.
        The tokens are layer-normed BEFORE pooling: normalising the pooled vector would divide an empty group's ~0
        by its ~0 spread and blow up the gradients.
        """
        composed: torch.Tensor | None = None  # [B, G_s, N]
        for soft, hard in zip(soft_maps, hard_maps):
            step = hard + soft - soft.detach() if self.hard_assignment else soft
            composed = step if composed is None else step @ composed
        assert composed is not None, "member_tokens needs at least one grouping stage"
        weights = composed / (composed.sum(dim=-1, keepdim=True) + 1.0)
        return weights @ self.member_norm(tokens)

    def forward(self, image: torch.Tensor) -> ImageEncoderOutput:
        x, grid = self.embed(image)
        groups: torch.Tensor | None = None
        soft_maps, hard_maps = [], []
        grouped: torch.Tensor | None = None  # what the first grouping block merged: the members' tokens
        for i, stage in enumerate(self.stages):
            mask = None
            if i == 0 and self.first_stage_token_radius > 0:
                mask = local_attention_mask(grid, stage.num_group_tokens, self.first_stage_token_radius, x.device)
            x, groups, soft, hard, merged = stage(x, groups, mask)
            if soft is not None:
                grouped = merged if grouped is None else grouped
                soft_maps.append(soft)
                hard_maps.append(hard)
        x = self.norm(x)
        members = None
        if self.member_norm is not None and grouped is not None:
            members = self.member_tokens(grouped, soft_maps, hard_maps)
        return ImageEncoderOutput(x.mean(dim=1), x, grid, soft_maps, hard_maps, members)
