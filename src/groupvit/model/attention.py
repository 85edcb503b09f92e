"""Attention building blocks: timm's pre-LN transformer Block, and the cross-attention block of the grouping layer.

Self-attention blocks are timm's `Block` (keys norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2: the same names
as the official checkpoint, so NVlabs weights load without renaming). The cross-attention has separate q/k/v
projections because the official pre-assignment attention stores them separately. Both pick
F.scaled_dot_product_attention or the explicit softmax through one `fused_attn` flag, set by `set_attn_impl`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp
from timm.models.vision_transformer import Block
from torch import nn

__all__ = ["make_block", "CrossAttention", "CrossAttnBlock", "set_attn_impl", "ATTN_IMPLS"]

ATTN_IMPLS = ("sdpa", "eager")


def make_block(
    dim: int,
    num_heads: int,
    mlp_ratio: float = 4.0,
    qkv_bias: bool = True,
    drop_path: float = 0.0,
    act_layer: type[nn.Module] = nn.GELU,
    norm_layer: type[nn.Module] = nn.LayerNorm,
) -> Block:
    """A pre-LN transformer block. torch's LayerNorm (eps 1e-5) as in the official code; timm's default is 1e-6."""
    return Block(
        dim,
        num_heads,
        mlp_ratio=mlp_ratio,
        qkv_bias=qkv_bias,
        drop_path=drop_path,
        act_layer=act_layer,
        norm_layer=norm_layer,
    )


class CrossAttention(nn.Module):
    """Multi-head attention of `query` tokens over `key` tokens (values = keys), separate q/k/v projections.

    Args:
        dim: token width (query and key).
        num_heads: heads; dim must be divisible by it.
        qkv_bias: bias on the q/k/v projections.
        attn_drop: dropout on the attention weights (training only).
        proj_drop: dropout after the output projection.
    """

    def __init__(
        self, dim: int, num_heads: int, qkv_bias: bool = True, attn_drop: float = 0.0, proj_drop: float = 0.0
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.fused_attn = True
        self.q_proj = nn.Linear(dim, dim, bias=qkv_bias)
        self.k_proj = nn.Linear(dim, dim, bias=qkv_bias)
        self.v_proj = nn.Linear(dim, dim, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        b, n, c = query.shape
        q, k, v = self._heads(self.q_proj(query)), self._heads(self.k_proj(key)), self._heads(self.v_proj(key))
        if self.fused_attn:
            x = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop.p if self.training else 0.0)
        else:
            attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
            x = self.attn_drop(attn) @ v
        x = x.transpose(1, 2).reshape(b, n, c)
        return self.proj_drop(self.proj(x))


class CrossAttnBlock(nn.Module):
    """query + attn(query, key); + MLP; then a post-LN (the official grouping block's `pre_assign_attn`).

    Args:
        dim: token width.
        num_heads: attention heads.
        mlp_ratio: MLP hidden width / dim.
        qkv_bias: bias on q/k/v.
        drop_path: stochastic depth on both residual branches.
        act_layer: MLP activation.
        norm_layer: normalisation layer class.
        post_norm: True (official): LN after the block and none on the inputs; False: pre-LN on query and key.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path: float = 0.0,
        act_layer: type[nn.Module] = nn.GELU,
        norm_layer: type[nn.Module] = nn.LayerNorm,
        post_norm: bool = True,
    ) -> None:
        super().__init__()
        self.norm_q = nn.Identity() if post_norm else norm_layer(dim)
        self.norm_k = nn.Identity() if post_norm else norm_layer(dim)
        self.norm_post = norm_layer(dim) if post_norm else nn.Identity()
        self.attn = CrossAttention(dim, num_heads, qkv_bias=qkv_bias)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=act_layer)

    def forward(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        x = query + self.drop_path(self.attn(self.norm_q(query), self.norm_k(key)))
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return self.norm_post(x)


def set_attn_impl(module: nn.Module, impl: str) -> nn.Module:
    """Switch every attention layer below `module` between SDPA and the explicit softmax (same numbers)."""
    if impl not in ATTN_IMPLS:
        raise ValueError(f"attn_impl must be one of {ATTN_IMPLS}, got {impl!r}")
    for m in module.modules():
        if hasattr(m, "fused_attn"):
            m.fused_attn = impl == "sdpa"
    return module
