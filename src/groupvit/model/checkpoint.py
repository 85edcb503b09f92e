"""Weights in and out.

Our format (a self-describing file): {"format": "groupvit-model", "version": 1, "config": asdict(ModelConfig),
"state_dict": ..., "meta": {...}}, written atomically (temporary file in the same folder, fsync, os.replace) and read
with torch.load(weights_only=True), so the config is plain data and loading never unpickles code.

Foreign weights go through `checkpoint_filter_fn(state_dict, model)` (timm's pattern): unwrap ('model' /
'state_dict' / DDP 'module.'), detect the source by a sentinel key (ours, official NVlabs, Hugging Face), rename and
reshape, resample the position embedding to the model's grid, fill the one parameter a source may lack
(multi_label_logit_scale: HF never has it) from the model. Then a strict check refuses another architecture with the
first missing / unexpected / mis-shaped keys.

Foreign files carry no architecture, except HF folders (config.json): `load_model` then infers it from the weights'
shapes. Head counts cannot be read from weights: the official rules are used (vision 6 heads when the width allows,
text width // 64); pass `cfg` to override.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..atomic import atomic_open
from .config import ImageEncoderConfig, ModelConfig, TextEncoderConfig, model_config_from_dict
from .convert_hf import convert_hf_state_dict, is_hf_state_dict, model_config_from_hf
from .convert_nvlabs import convert_nvlabs_state_dict, is_nvlabs_state_dict
from .patch_embed import resample_pos_embed
from .state_dict_utils import ArchitectureMismatch, check_compatible, unwrap_state_dict

__all__ = [
    "FORMAT", "VERSION", "OURS_SENTINEL", "save_checkpoint", "load_checkpoint_state", "load_model",
    "checkpoint_filter_fn", "detect_source", "infer_model_config", "weights_file", "ArchitectureMismatch",
    "OtherFormatCheckpoint",
]

FORMAT = "groupvit-model"
VERSION = 1


class OtherFormatCheckpoint(ValueError):
    """A checkpoint in another of this project's formats (`.format`, e.g. the supervised reference's)."""

    def __init__(self, path: str | Path, format: str) -> None:
        super().__init__(f"{path}: a {format!r} checkpoint, not a GroupViT model ({FORMAT!r})")
        self.format = format


OURS_SENTINEL = "image_encoder.patch_embed.proj.weight"
_FILL_FROM_MODEL = ("multi_label_logit_scale",)


# ---- save ----------------------------------------------------------------------------------------------------------
def _plain(value: Any, where: str) -> Any:
    """Meta values that torch.load(weights_only=True) can read back; Paths/numpy scalars converted, others refused."""
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value), where)
    if isinstance(value, Mapping):
        return {str(k): _plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        return value.item()
    raise TypeError(f"checkpoint meta {where} of type {type(value).__name__} cannot be stored weights-only")


def save_checkpoint(path: str | os.PathLike, model: nn.Module, **meta: Any) -> Path:
    """Write model config + weights + meta atomically to `path`; returns the path."""
    path = Path(path)
    cfg = getattr(model, "cfg", None)
    if not isinstance(cfg, ModelConfig):
        raise TypeError("save_checkpoint needs a GroupViTModel (a model with a ModelConfig at .cfg)")
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "config": dataclasses.asdict(cfg),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": _plain(meta, "meta"),
    }
    with atomic_open(path, "wb", fsync=True) as handle:
        torch.save(payload, handle)
    return path


# ---- read ----------------------------------------------------------------------------------------------------------
def _torch_load(path: Path, map_location: Any) -> Any:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device=str(map_location))
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"{path}: holds Python objects besides tensors, which weights-only loading refuses ({err}). If the file "
            "is trusted, re-save just its weights: torch.save({'model': torch.load(p, weights_only=False)['model']}, q)"
        ) from err


def detect_source(sd: Mapping[str, Any]) -> str:
    """'ours', 'nvlabs' or 'hf' by sentinel key; ValueError otherwise."""
    if OURS_SENTINEL in sd:
        return "ours"
    if is_nvlabs_state_dict(sd):
        return "nvlabs"
    if is_hf_state_dict(sd):
        return "hf"
    raise ValueError(f"unrecognised checkpoint: none of the known sentinel keys; first keys {list(sd)[:8]}")


def _to_ours(sd: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str]:
    sd = unwrap_state_dict(sd)
    source = detect_source(sd)
    if source == "nvlabs":
        return convert_nvlabs_state_dict(sd), source
    if source == "hf":
        return convert_hf_state_dict(sd), source
    return dict(sd), source


def _hf_folder(path: Path) -> tuple[Path, dict] | None:
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        return None
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (path / name).is_file():
            return path / name, json.loads(cfg_file.read_text())
    raise FileNotFoundError(f"{path}: config.json but no model.safetensors / pytorch_model.bin")


def weights_file(path: str | os.PathLike) -> Path:
    """The file that holds the weights: `path` itself, or a Hugging Face folder's weight file."""
    path = Path(path)
    found = _hf_folder(path) if path.is_dir() else None
    return found[0] if found is not None else path


def load_checkpoint_state(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Read any supported file (or HF folder) into our layout: {format, version, source, config (dict), state_dict
    (our names), meta}. Foreign files get an inferred (or, for HF folders, converted) config."""
    path = Path(path)
    hf_config: dict | None = None
    if path.is_dir():
        found = _hf_folder(path)
        if found is None:
            raise FileNotFoundError(f"{path}: a folder without config.json is not a Hugging Face model folder")
        path, hf_config = found
    raw = _torch_load(path, map_location)
    if not isinstance(raw, Mapping):
        raise ValueError(f"{path}: expected a dict checkpoint, got {type(raw).__name__}")
    if raw.get("format") == FORMAT:
        if int(raw.get("version", 0)) > VERSION:
            raise ValueError(f"{path}: checkpoint version {raw['version']} is newer than this code's {VERSION}")
        return {**raw, "source": "ours", "meta": dict(raw.get("meta") or {})}
    if isinstance(raw.get("format"), str):  # another of this project's formats, e.g. the supervised reference's
        raise OtherFormatCheckpoint(path, raw["format"])
    sd, source = _to_ours(raw)
    cfg = model_config_from_hf(hf_config) if hf_config is not None else infer_model_config(sd)
    return {
        "format": FORMAT, "version": VERSION, "source": source, "config": dataclasses.asdict(cfg),
        "state_dict": sd, "meta": {"source": source, "path": str(path)},
    }


def checkpoint_filter_fn(state_dict: Mapping[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Any supported state dict -> one `model.load_state_dict` accepts (names, shapes, position grid, fills)."""
    sd, _ = _to_ours(state_dict)
    target = model.state_dict()
    key = "image_encoder.pos_embed"
    if key in sd and key in target and (
        sd[key].shape != target[key].shape and sd[key].shape[-1] == target[key].shape[-1]
    ):
        old, new = math.isqrt(sd[key].shape[1]), math.isqrt(target[key].shape[1])
        if old * old == sd[key].shape[1] and new * new == target[key].shape[1]:
            sd[key] = resample_pos_embed(sd[key], (new, new), (old, old))
    for name in _FILL_FROM_MODEL:
        if name not in sd and name in target:
            sd[name] = target[name].detach().clone()
    return sd


def load_model(
    path: str | os.PathLike, cfg: ModelConfig | None = None, map_location: Any = "cpu"
) -> nn.Module:
    """Build and load a model from our checkpoint, an NVlabs file, an HF state dict or an HF folder (eval mode).

    `cfg` overrides the stored/inferred architecture; a mismatch raises ArchitectureMismatch listing keys.
    """
    from .factory import build_model

    state = load_checkpoint_state(path, map_location)
    config = cfg if cfg is not None else model_config_from_dict(state["config"])
    model = build_model(config)
    sd = checkpoint_filter_fn(state["state_dict"], model)
    check_compatible(model, sd, source=f"{path} ({state['source']})")
    model.load_state_dict(sd)
    return model.eval()


# ---- architecture from weights -------------------------------------------------------------------------------------
def _indices(sd: Mapping[str, Any], prefix: str) -> list[int]:
    pat = re.compile("^" + re.escape(prefix) + r"(\d+)\.")
    return sorted({int(m.group(1)) for k in sd if (m := pat.match(k))})


def infer_model_config(sd: Mapping[str, torch.Tensor]) -> ModelConfig:
    """A ModelConfig matching the shapes of a state dict in our naming (grouping image encoder, CLIP-style or MiniLM
    text). Training-only settings (drop path, Gumbel, hard) keep the paper's defaults."""
    try:
        pos, proj = sd["image_encoder.pos_embed"], sd["image_encoder.patch_embed.proj.weight"]
    except KeyError as err:
        raise ArchitectureMismatch(f"cannot infer the architecture: {err} missing") from err
    dim, side = int(pos.shape[-1]), math.isqrt(int(pos.shape[1]))
    stem_convs = [sd[k] for k in sorted(sd, key=lambda k: [int(t) if t.isdigit() else t for t in k.split(".")])
                  if re.match(r"^image_encoder\.patch_embed\.stem\.layers\.\d+\.weight$", k) and sd[k].ndim == 4]
    patch = int(proj.shape[-1]) * 2 ** len(stem_convs)
    default_heads = ImageEncoderConfig().num_heads
    image = dict(
        image_size=side * patch, patch_size=patch, in_chans=int((stem_convs[0] if stem_convs else proj).shape[1]),
        stem="conv" if stem_convs else "linear", stem_channels=[int(w.shape[0]) for w in stem_convs] or [32, 64],
        embed_dim=dim, num_heads=default_heads if dim % default_heads == 0 else max(1, dim // 64),
        qkv_bias=any(k.startswith("image_encoder.") and k.endswith("attn.qkv.bias") for k in sd),
    )
    stages = _indices(sd, "image_encoder.stages.")
    if stages:
        depths, groups, outs = [], [], []
        for i in stages:
            p = f"image_encoder.stages.{i}."
            depths.append(len(_indices(sd, p + "blocks.")))
            groups.append(int(sd[p + "group_token"].shape[1]) if p + "group_token" in sd else 0)
            if groups[-1]:
                outs.append(int(sd[p + "grouping.mlp_inter.fc2.weight"].shape[0]))
        first = next(i for i, g in zip(stages, groups) if g)
        g = f"image_encoder.stages.{first}.grouping."
        image.update(
            depths=depths, num_group_tokens=groups, num_output_groups=outs, grouping=True,
            assign_mlp_ratio=[
                sd[g + "mlp_inter.fc1.weight"].shape[0] / dim, sd[g + "mlp_channels.fc1.weight"].shape[0] / dim
            ],
        )
        fc1 = next(k for k in sd if k.startswith("image_encoder.stages.") and k.endswith("blocks.0.mlp.fc1.weight"))
    else:
        image.update(depths=[len(_indices(sd, "image_encoder.blocks."))], num_group_tokens=[0], num_output_groups=[],
                     grouping=False)
        fc1 = "image_encoder.blocks.0.mlp.fc1.weight"
    image["mlp_ratio"] = sd[fc1].shape[0] / dim
    if any(k.startswith("text_encoder.model.") for k in sd):
        text = TextEncoderConfig(kind="minilm")
    elif "text_encoder.positional_embedding" not in sd:
        vocab, width = sd["text_encoder.token_embedding.weight"].shape
        text = TextEncoderConfig(kind="bow", vocab_size=int(vocab), width=int(width))
    else:
        vocab, width = sd["text_encoder.token_embedding.weight"].shape
        text = TextEncoderConfig(
            kind="transformer", context_length=int(sd["text_encoder.positional_embedding"].shape[0]),
            vocab_size=int(vocab), width=int(width), layers=len(_indices(sd, "text_encoder.blocks.")),
            heads=max(1, int(width) // 64),
        )
    return ModelConfig(
        image=ImageEncoderConfig(**image), text=text,
        proj_hidden=int(sd["image_head.fc1.weight"].shape[0]), proj_dim=int(sd["image_head.fc2.weight"].shape[0]),
    )
