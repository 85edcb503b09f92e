"""The supervised segmenter: the ViT baseline's image encoder + a per-token linear classifier, and its model.pt."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from groupvit.atomic import atomic_open
from groupvit.model.config import ModelConfig, model_config_from_dict
from groupvit.model.vit import ViTImageEncoder

FORMAT = "groupvit-supervised"
VERSION = 1


class SupervisedSegmenterModel(nn.Module):
    """image [B, 3, H, W] -> per-pixel logits [B, 1 + C, H, W] (class 0 = background).

    Args:
        cfg: the variant's ModelConfig; only `cfg.image` is built (it must be a plain ViT: image.grouping false).
        class_names: the world's classes without background, in label order (label i + 1 = class_names[i]).
    """

    def __init__(self, cfg: ModelConfig, class_names: list[str]) -> None:
        super().__init__()
        if cfg.image.grouping:
            raise ValueError("the supervised reference needs a plain ViT encoder: set model.image.grouping: false in "
                             "the variant's overrides (as vit_baselines does)")
        self.cfg = cfg
        self.class_names = list(class_names)
        self.image_encoder = ViTImageEncoder(cfg.image)
        self.head = nn.Linear(cfg.image.embed_dim, 1 + len(self.class_names))

    @property
    def patch_size(self) -> int:
        return self.cfg.image.patch_size

    def token_logits(self, image: torch.Tensor) -> torch.Tensor:
        """[B, 1 + C, h, w] logits on the token grid."""
        out = self.image_encoder(image)
        logits = self.head(out.tokens)  # [B, h*w, 1 + C]
        h, w = out.grid
        return logits.transpose(1, 2).reshape(logits.shape[0], -1, h, w)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Token logits upsampled bilinearly to the image size."""
        return F.interpolate(self.token_logits(image), size=tuple(image.shape[-2:]), mode="bilinear",
                             align_corners=False)


def build_supervised_model(cfg: ModelConfig, class_names: list[str]) -> SupervisedSegmenterModel:
    return SupervisedSegmenterModel(cfg, class_names)


def save_supervised(path: str | os.PathLike, model: SupervisedSegmenterModel, **meta: Any) -> Path:
    """Config, class names, weights and meta (plain values) to `path`, atomically."""
    payload = {
        "format": FORMAT, "version": VERSION, "config": dataclasses.asdict(model.cfg),
        "class_names": list(model.class_names),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "meta": meta,
    }
    path = Path(path)
    with atomic_open(path, "wb", fsync=True) as handle:
        torch.save(payload, handle)
    return path


def load_supervised(path: str | os.PathLike, map_location: Any = "cpu") -> SupervisedSegmenterModel:
    """The model saved by save_supervised, in eval mode; a clear error for any other checkpoint."""
    raw = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        found = raw.get("format") if isinstance(raw, dict) else type(raw).__name__
        raise ValueError(f"{path}: not a supervised reference checkpoint (format {found!r}); `groupvit "
                         "train-supervised` writes them, and `--grouper supervised` scores only them")
    if int(raw.get("version", 0)) > VERSION:
        raise ValueError(f"{path}: checkpoint version {raw['version']} is newer than this code's {VERSION}")
    model = SupervisedSegmenterModel(model_config_from_dict(raw["config"]), raw["class_names"])
    model.load_state_dict(raw["state_dict"])
    return model.eval()
