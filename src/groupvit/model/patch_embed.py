"""Image -> patch tokens: a linear (conv k = s = patch) or small conv stem, LayerNorm, learned position embedding.

The official model normalises the patch projection with LN and adds a learned position embedding to the patch tokens
only (there is no class token). Evaluation runs at other resolutions (448 sliding windows), so the embedding is
resampled bicubically (align_corners=False, no antialias: what the official code and the HF port do) whenever the token
grid differs from the one it was trained on.
"""
from __future__ import annotations

from typing import Any

import torch
from timm.layers import resample_abs_pos_embed, trunc_normal_
from torch import nn

__all__ = ["PatchEmbed", "ConvStem", "check_image_size", "resample_pos_embed", "new_pos_embed"]


def check_image_size(height: int, width: int, patch_size: int) -> None:
    """Refuse inputs the patch grid cannot tile instead of silently cropping the border (what a strided conv does)."""
    if height % patch_size or width % patch_size:
        raise ValueError(
            f"image size {height}x{width} is not a multiple of the patch size {patch_size}; "
            f"resize or pad the input to a multiple of {patch_size}"
        )


class ConvStem(nn.Module):
    """Stride-2 3x3 conv -> BN -> GELU stages; a CPU-scale stem that reaches small patches with few parameters.

    Args:
        in_chans: input channels.
        channels: width of each stride-2 stage; len(channels) halvings of the resolution.
        act_layer: activation after each BN.
    """

    def __init__(self, in_chans: int, channels: list[int], act_layer: type[nn.Module] = nn.GELU) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = in_chans
        for width in channels:
            layers += [nn.Conv2d(prev, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width), act_layer()]
            prev = width
        self.layers = nn.Sequential(*layers)
        self.out_chans = prev
        self.reduction = 2 ** len(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class PatchEmbed(nn.Module):
    """Patchify + project + LN. Returns tokens [B, h*w, C] and the grid (h, w).

    Args:
        patch_size: total stride from pixels to tokens.
        in_chans: image channels.
        embed_dim: token width.
        stem: "linear" (paper: one conv with kernel = stride = patch) or "conv" (ConvStem, then a conv with
            kernel = stride = patch / 2**len(stem_channels)).
        stem_channels: ConvStem widths (ignored for the linear stem).
        norm_layer: normalisation after the projection (nn.Identity to disable).
    """

    def __init__(
        self,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 384,
        stem: str = "linear",
        stem_channels: list[int] | None = None,
        norm_layer: type[nn.Module] = nn.LayerNorm,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        if stem == "linear":
            self.stem: nn.Module = nn.Identity()
            proj_in, proj_stride = in_chans, patch_size
        elif stem == "conv":
            conv = ConvStem(in_chans, list(stem_channels or []))
            if patch_size % conv.reduction:
                raise ValueError(
                    f"patch_size {patch_size} is not divisible by the conv stem's stride {conv.reduction} "
                    f"({len(stem_channels or [])} stride-2 stages)"
                )
            self.stem = conv
            proj_in, proj_stride = conv.out_chans, patch_size // conv.reduction
        else:
            raise ValueError(f"unknown stem {stem!r}; expected 'linear' or 'conv'")
        self.proj = nn.Conv2d(proj_in, embed_dim, kernel_size=proj_stride, stride=proj_stride)
        self.norm = norm_layer(embed_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        if x.ndim != 4:
            raise ValueError(f"expected images [B, C, H, W], got shape {tuple(x.shape)}")
        check_image_size(x.shape[-2], x.shape[-1], self.patch_size)
        x = self.proj(self.stem(x))
        grid = (x.shape[-2], x.shape[-1])
        return self.norm(x.flatten(2).transpose(1, 2)), grid


def resample_pos_embed(
    pos_embed: torch.Tensor, grid: tuple[int, int], base_grid: tuple[int, int]
) -> torch.Tensor:
    """Bicubically resample a [1, h0*w0, C] position embedding to another token grid (identity when equal)."""
    if tuple(grid) == tuple(base_grid):
        return pos_embed
    return resample_abs_pos_embed(pos_embed, list(grid), old_size=list(base_grid), num_prefix_tokens=0, antialias=False)


def new_pos_embed(num_tokens: int, dim: int) -> nn.Parameter:
    """A trunc-normal (std .02) position embedding, as the official model initialises it."""
    param = nn.Parameter(torch.zeros(1, num_tokens, dim))
    trunc_normal_(param, std=0.02)
    return param


class PatchTokenEncoder(nn.Module):
    """Base of both image encoders: patch embedding + learned position embedding (resampled for other input sizes).

    Subclasses add their blocks; `embed(image)` gives the position-encoded patch tokens and their grid.
    """

    def __init__(self, cfg: Any, norm_layer: type[nn.Module] = nn.LayerNorm) -> None:
        super().__init__()
        self.cfg = cfg
        self.num_features = cfg.embed_dim
        self.patch_size = cfg.patch_size
        self.patch_embed = PatchEmbed(
            cfg.patch_size, cfg.in_chans, cfg.embed_dim, cfg.stem, cfg.stem_channels, norm_layer=norm_layer
        )
        side = cfg.image_size // cfg.patch_size
        self.base_grid = (side, side)
        self.pos_embed = new_pos_embed(side * side, cfg.embed_dim)

    def embed(self, image: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        x, grid = self.patch_embed(image)
        return x + resample_pos_embed(self.pos_embed, grid, self.base_grid), grid
