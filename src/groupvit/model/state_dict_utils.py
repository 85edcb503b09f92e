"""Small state-dict helpers shared by the foreign-checkpoint converters: unwrap, rename by table, strict check."""
from __future__ import annotations

import re
from collections.abc import Mapping

import torch
from torch import nn

__all__ = ["unwrap_state_dict", "rename_keys", "check_compatible", "ArchitectureMismatch"]


class ArchitectureMismatch(ValueError):
    """A checkpoint whose parameters do not fit the model (other architecture or config)."""


def unwrap_state_dict(obj: Mapping) -> dict[str, torch.Tensor]:
    """The tensor dict inside a checkpoint: under 'model' / 'state_dict' when present, DDP's 'module.' stripped."""
    sd = obj
    for key in ("model", "state_dict"):
        if isinstance(sd, Mapping) and isinstance(sd.get(key), Mapping):
            sd = sd[key]
    if not isinstance(sd, Mapping):
        raise ValueError(f"not a state dict: {type(sd).__name__}")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in sd.items()}


def rename_keys(sd: Mapping[str, torch.Tensor], table: list[tuple[str, str]]) -> dict[str, torch.Tensor]:
    """Rename every key by the first matching (regex, replacement) of `table`; unmatched keys pass unchanged, so
    the strict check reports them as unexpected."""
    compiled = [(re.compile(p), r) for p, r in table]
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        for pattern, repl in compiled:
            if pattern.search(key):
                key = pattern.sub(repl, key, count=1)
                break
        out[key] = value
    return out


def check_compatible(
    model: nn.Module, sd: Mapping[str, torch.Tensor], source: str = "checkpoint", show: int = 8
) -> None:
    """Raise ArchitectureMismatch listing the first missing, unexpected and wrongly shaped keys."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    shapes = [
        f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in sd and tuple(sd[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or shapes:
        parts = [f"{source} does not match the model architecture"]
        for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
            if items:
                more = f" (+{len(items) - show} more)" if len(items) > show else ""
                parts.append(f"{len(items)} {label}: {items[:show]}{more}")
        raise ArchitectureMismatch("; ".join(parts))
