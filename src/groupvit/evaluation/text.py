"""Class-name text embeddings and the model's logit scale, as the zero-shot protocol uses them.

Each class name is put into every template, encoded, the template embeddings averaged and re-normalised
(CLIP's prompt ensembling; GroupViT's `build_text_embedding`). Background is never a text query: it is what
remains below the threshold.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def model_device(model: nn.Module) -> torch.device:
    """Where the model's weights live (CPU for a parameter-less stand-in)."""
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


def fill_templates(class_names: Sequence[str], templates: Sequence[str]) -> list[str]:
    """Prompts in class-major order: [c0t0, c0t1, ..., c1t0, ...]."""
    if not templates:
        raise ValueError("at least one prompt template is needed")
    for t in templates:
        if "{}" not in t:
            raise ValueError(f"template {t!r} has no '{{}}' placeholder for the class name")
    return [t.format(name) for name in class_names for t in templates]


@torch.no_grad()
def class_text_embeddings(model: nn.Module, class_names: Sequence[str], templates: Sequence[str],
                          batch_size: int = 256) -> torch.Tensor:
    """[C, D] L2-normalised text embeddings, template-averaged, on the model's device."""
    prompts = fill_templates(class_names, templates)
    device = model_device(model)
    chunks = []
    for start in range(0, len(prompts), batch_size):
        tokens = model.tokenizer(prompts[start:start + batch_size])
        tokens = tokens.to(device) if isinstance(tokens, torch.Tensor) else tokens
        chunks.append(F.normalize(model.encode_text(tokens).float(), dim=-1))
    emb = torch.cat(chunks).reshape(len(class_names), len(templates), -1)
    return F.normalize(emb.mean(dim=1), dim=-1)


@torch.no_grad()
def logit_scale_of(model: nn.Module, max_scale: float | None = None) -> float:
    """The model's contrastive temperature as a multiplier: `logit_scale_value()` when the model offers it
    (it knows its own clamp), else exp(raw parameter) clamped like the official code, at the model config's
    `logit_scale_max` when it has one, else 100."""
    if max_scale is None:
        max_scale = float(getattr(getattr(model, "cfg", None), "logit_scale_max", 100.0))
    getter = getattr(model, "logit_scale_value", None)
    if callable(getter):
        value = getter()
        return float(value.item() if isinstance(value, torch.Tensor) else value)
    raw = getattr(model, "logit_scale", None)
    if raw is None:
        raise AttributeError("model has neither logit_scale_value() nor a logit_scale parameter")
    raw = raw if isinstance(raw, torch.Tensor) else torch.tensor(float(raw))
    return float(raw.detach().float().exp().clamp(max=max_scale).item())
