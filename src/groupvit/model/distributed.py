"""Differentiable all-gather for contrastive negatives that span every rank.

torch.distributed.nn.functional.all_gather backpropagates (its backward reduce-scatters the gradients), so each
rank's loss over [local rows x global columns] sends gradient to the embeddings of every rank, and after DDP's
gradient averaging the parameter gradients equal those of one process computing the loss on the global batch
(tests/test_loss.py checks this with 2 gloo processes). Every rank must pass the same batch size (drop the last
partial batch). With world_size 1 nothing is called, so the single-process path needs no process group.
"""
from __future__ import annotations

import torch

__all__ = ["gather_features"]


def gather_features(x: torch.Tensor, world_size: int) -> torch.Tensor:
    """Concatenate `x` [B, ...] from all ranks in rank order ([world_size * B, ...]); identity for one process."""
    if world_size == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x.contiguous()), dim=0)

