"""Plain ViT of the same width and total depth as the grouping encoder (no group tokens, no grouping blocks).

This is the "CLIP-trained ViT-S" of the paper's non-parametric baselines (pixel-wise, K-means, mean-shift, spectral):
the baselines cluster its final-normed patch tokens, so it returns them with their grid; the image embedding is their
mean, like GroupViT's.
"""
from __future__ import annotations

import torch
from torch import nn

from .attention import make_block
from .config import ImageEncoderConfig
from .image_encoder import init_vit_weights
from .outputs import ImageEncoderOutput
from .patch_embed import PatchTokenEncoder

__all__ = ["ViTImageEncoder"]


class ViTImageEncoder(PatchTokenEncoder):
    """Patch embedding + sum(cfg.depths) pre-LN blocks + final LN + mean pool.

    Args:
        cfg: ImageEncoderConfig; the grouping fields are ignored.
        act_layer: MLP activation.
        norm_layer: normalisation layer class.
    """

    def __init__(
        self, cfg: ImageEncoderConfig, act_layer: type[nn.Module] = nn.GELU, norm_layer: type[nn.Module] = nn.LayerNorm
    ) -> None:
        super().__init__(cfg, norm_layer)
        dim = cfg.embed_dim
        depth = sum(cfg.depths)
        dpr = torch.linspace(0, cfg.drop_path_rate, max(depth, 1)).tolist()
        self.blocks = nn.ModuleList(
            make_block(dim, cfg.num_heads, cfg.mlp_ratio, cfg.qkv_bias, dpr[i], act_layer=act_layer,
                       norm_layer=norm_layer)
            for i in range(depth)
        )
        self.norm = norm_layer(dim)
        for name, module in self.named_modules():
            if not name.startswith("patch_embed.stem"):
                init_vit_weights(module)

    def forward(self, image: torch.Tensor) -> ImageEncoderOutput:
        x, grid = self.embed(image)
        for blk in self.blocks:
            x = blk(x)
        x = self.norm(x)
        return ImageEncoderOutput(x.mean(dim=1), x, grid)
