"""A tiny CLIP-style model, loss and in-memory data with the real contracts, for testing the engine alone.

The training engine's guarantees (exact resume, DDP == one process, NaN handling, checkpoint format) do not depend
on GroupViT's architecture, and checking them with the real model on a 2-core CPU would take minutes. The toy
model keeps the parts that matter: the model -> loss keyword contract, a random draw in the forward pass (so that
RNG restore is exercised), parameters that the weight-decay rules exempt, and a contrastive loss whose negatives
are gathered across ranks with a differentiable all-gather (so that DDP with per-rank batches equals one process
with the global batch).
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from groupvit.train.checkpointing import atomic_torch_save
from groupvit.train.data_source import TrainData


class ToyCLIP(nn.Module):
    def __init__(self, image_size: int = 8, vocab: int = 32, dim: int = 16, noise: float = 0.1) -> None:
        super().__init__()
        self.image_proj = nn.Linear(3 * image_size * image_size, dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, dim, 1) + 0.01)
        self.group_token = nn.Parameter(torch.randn(1, 2, dim) * 0.02)
        self.token_embedding = nn.Embedding(vocab, dim)
        self.text_proj = nn.Linear(dim, dim, bias=False)
        self.norm = nn.LayerNorm(dim)
        self.logit_scale = nn.Parameter(torch.tensor(2.6592))
        self.noise = noise

    @staticmethod
    def tokenizer(texts: list[str]) -> torch.Tensor:
        return torch.tensor([[hash(t) % 32] * 4 for t in texts], dtype=torch.long)

    def forward(self, image: torch.Tensor, text: torch.Tensor, prompts: torch.Tensor | None = None) -> dict:
        img = self.image_proj(image.flatten(1)) + self.pos_embed.squeeze(-1) + self.group_token.mean(1)
        if self.training and self.noise > 0:  # stands in for Gumbel noise / drop-path: consumes the torch RNG
            img = img + self.noise * torch.randn_like(img)
        txt = self.text_proj(self.norm(self.token_embedding(text).mean(1)))
        return {
            "image_embed": F.normalize(img, dim=-1),
            "text_embed": F.normalize(txt, dim=-1),
            "logit_scale": self.logit_scale.exp().clamp(max=100),
        }


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    import torch.distributed.nn.functional as dist_fn

    return torch.cat(dist_fn.all_gather(x), dim=0)


class ToyContrastiveLoss(nn.Module):
    """Symmetric InfoNCE over the global batch; `nan_at_calls` returns NaN on those forward calls (0-based)."""

    def __init__(self, loss_cfg: Any = None, rank: int = 0, world_size: int = 1,
                 nan_at_calls: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.rank, self.world_size = rank, world_size
        self.nan_at_calls = set(nan_at_calls)
        self.calls = 0

    def forward(self, image_embed: torch.Tensor, text_embed: torch.Tensor, logit_scale: torch.Tensor) -> dict:
        all_img, all_txt = gather_with_grad(image_embed), gather_with_grad(text_embed)
        labels = torch.arange(image_embed.shape[0], device=image_embed.device) + self.rank * image_embed.shape[0]
        loss_i = F.cross_entropy(logit_scale * image_embed @ all_txt.T, labels)
        loss_t = F.cross_entropy(logit_scale * text_embed @ all_img.T, labels)
        contrastive = (loss_i + loss_t) / 2
        if self.calls in self.nan_at_calls:
            contrastive = contrastive * torch.tensor(float("nan"))
        self.calls += 1
        return {"loss": contrastive, "contrastive": contrastive}


def toy_data(num_samples: int = 64, image_size: int = 8, seq_len: int = 4, vocab: int = 32, seed: int = 0) -> TrainData:
    """In-memory pairs served in global batches; rank r takes its slice, so the split never changes the data.

    Global batch g of size G holds samples g*G .. g*G+G-1 (mod N) of a per-epoch permutation; `start_step` (in
    micro-batches, like the real loader) skips exactly.
    """
    gen = torch.Generator().manual_seed(seed)
    images = torch.randn(num_samples, 3, image_size, image_size, generator=gen)
    texts = torch.randint(0, vocab, (num_samples, seq_len), generator=gen)

    def make_batches(*, start_step: int, batch_size: int, rank: int, world_size: int, seed: int,
                     tokenize: Any = None, pin_memory: bool = False) -> Iterator[dict[str, Any]]:
        global_batch = batch_size * world_size
        perms: dict[int, torch.Tensor] = {}
        step = start_step
        while True:
            first = step * global_batch + rank * batch_size
            idx = []
            for i in range(first, first + batch_size):
                epoch, pos = divmod(i, num_samples)
                if epoch not in perms:
                    gen_epoch = torch.Generator().manual_seed(seed * 1000 + epoch)
                    perms[epoch] = torch.randperm(num_samples, generator=gen_epoch)
                idx.append(int(perms[epoch][pos]))
            yield {"image": images[idx], "text": texts[idx], "key": [str(i) for i in idx]}
            step += 1

    return TrainData(num_samples, f"toy-{num_samples}-{seed}", make_batches)


def save_toy_model(path: Any, model: nn.Module, **meta: Any) -> None:
    atomic_torch_save({"model": model.state_dict(), **meta}, path)




def toy_parts(noise: float = 0.1, nan_at_calls: tuple[int, ...] = ()) -> Any:
    """ModelParts building the toy model and loss (for `groupvit.train.runner.train(..., parts=...)`)."""
    from groupvit.train.runner import ModelParts

    return ModelParts(
        build_model=lambda model_cfg: ToyCLIP(noise=noise),
        build_loss=lambda loss_cfg, rank, world_size: ToyContrastiveLoss(loss_cfg, rank, world_size, nan_at_calls),
        save_model=save_toy_model,
    )


def toy_experiment(**train: Any) -> Any:
    """An ExperimentConfig whose train section is small and CPU-only; keyword arguments override TrainConfig."""
    from groupvit.config.experiment import ExperimentConfig
    from groupvit.train.config import TrainConfig

    base = dict(batch_size=8, base_batch_size=8, base_lr=1e-2, min_lr=1e-4, warmup_lr=1e-4, warmup_steps=2, steps=6,
                precision="fp32", device="cpu", checkpoint_every=3, log_every=1, keep_checkpoints=3)
    cfg = ExperimentConfig(preset="toy")
    cfg.train = TrainConfig(**{**base, **train})
    return cfg


__all__ = [
    "ToyCLIP", "ToyContrastiveLoss", "gather_with_grad", "save_toy_model", "toy_data", "toy_experiment", "toy_parts",
]
