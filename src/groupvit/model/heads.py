"""Projection heads: the official 2-layer MLP in -> hidden -> BN -> ReLU -> out.

The official heads are Conv1d(k=1) + BatchNorm1d over [B, C, L]; a Linear on the flattened tokens with BatchNorm1d
over B*L rows computes the same thing (same batch statistics in training) and loads both the official (squeezed
Conv1d) and the Hugging Face (Linear) weights. Inputs may be [B, D] (pooled embeddings) or [B, G, D] (group or patch
tokens); in training the BN statistics of a [B, G, D] input span all B*G tokens, as in the official code.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["ProjectionHead"]


class ProjectionHead(nn.Module):
    """Args:
        in_dim: encoder width.
        hidden_dim: hidden width (4096 in the paper).
        out_dim: joint embedding width (256).
        norm_layer: normalisation on the hidden layer (BatchNorm1d; nn.Identity-compatible class to disable).
        act_layer: activation on the hidden layer.
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int = 4096,
        out_dim: int = 256,
        norm_layer: type[nn.Module] = nn.BatchNorm1d,
        act_layer: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden_dim)
        self.norm = norm_layer(hidden_dim)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim not in (2, 3):
            raise ValueError(f"projection head expects [B, D] or [B, G, D], got shape {tuple(x.shape)}")
        lead = x.shape[:-1]
        x = self.fc1(x.reshape(-1, x.shape[-1]))
        x = self.fc2(self.act(self.norm(x)))
        return x.reshape(*lead, x.shape[-1])
