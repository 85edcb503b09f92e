"""The input protocol a checkpoint expects, for images of any size: which short side, which windows.

Our checkpoints carry the experiment config they were trained with (model.pt meta "config"; a training
checkpoint keeps it at the top level): its `eval` section and normalisation are the protocol the model was scored
with. Official and Hugging Face weights carry none: they get the paper's protocol (the dataclass defaults: short side
448, sliding 448-px windows every 224 px). An `eval.resize_short` of 0 ("keep the size", right for a dataset that
already has the training size) becomes the model's training resolution, with windows of that size every half
window, so a photo is seen at the scale the model learned.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from groupvit.evaluation.config import EvalConfig


@dataclass(frozen=True)
class ProtocolSource:
    """Where the settings come from: an eval config, the normalisation, and a phrase naming the origin."""

    eval: EvalConfig
    mean: tuple[float, ...]
    std: tuple[float, ...]
    origin: str


def stored_experiment_config(path: str | os.PathLike) -> dict | None:
    """The experiment config dict saved in one of our checkpoints (model.pt or a training step file), else None.

    Memory-maps the file when it can, so reading the config of a large file costs little; any file this cannot
    read (foreign formats, folders, safetensors) gives None and is left to the model loader to judge."""
    import torch

    p = Path(path)
    if not p.is_file() or p.suffix == ".safetensors":
        return None
    raw = None
    for kwargs in ({"mmap": True}, {}):
        try:
            raw = torch.load(p, map_location="cpu", weights_only=True, **kwargs)
            break
        except Exception:  # noqa: BLE001 - not our format, or not mmap-able; the loader reports real errors
            continue
    if not isinstance(raw, Mapping):
        return None
    meta = raw.get("meta") if raw.get("format") == "groupvit-model" else raw
    config = meta.get("config") if isinstance(meta, Mapping) else None
    return dict(config) if isinstance(config, Mapping) and isinstance(config.get("eval"), Mapping) else None


def eval_config_from(stored: Mapping[str, Any]) -> EvalConfig:
    """EvalConfig of a stored experiment config; keys this code does not know (a newer or older checkpoint) are
    dropped, missing ones take the defaults."""
    from groupvit.dataclass_io import from_dict

    known = {f.name for f in dataclasses.fields(EvalConfig)}
    kept = {k: v for k, v in dict(stored["eval"]).items() if k in known}
    return from_dict(EvalConfig, kept, "checkpoint config.eval")


def checkpoint_source(stored: Mapping[str, Any] | None, paper: Any, explicit: Any = None,
                      explicit_origin: str = "") -> ProtocolSource:
    """The protocol's origin: `explicit` (an ExperimentConfig the user named with --preset/--set) first, else the
    checkpoint's stored config, else `paper` (an ExperimentConfig holding the paper's settings)."""
    if explicit is not None:
        return ProtocolSource(explicit.eval, tuple(explicit.data.augment.mean), tuple(explicit.data.augment.std),
                              explicit_origin or f"config preset {explicit.preset!r}")
    if stored is not None:
        augment = (stored.get("data") or {}).get("augment") or {}
        mean = tuple(augment.get("mean", paper.data.augment.mean))
        std = tuple(augment.get("std", paper.data.augment.std))
        preset = f", preset {stored['preset']}" if stored.get("preset") else ""
        return ProtocolSource(eval_config_from(stored), mean, std, f"the checkpoint's own config{preset}")
    return ProtocolSource(paper.eval, tuple(paper.data.augment.mean), tuple(paper.data.augment.std),
                          "the paper's protocol (the checkpoint carries no config)")


@dataclass(frozen=True)
class Geometry:
    """short side (0 = keep the input size), long-side cap, window and stride (window 0 = the whole image)."""

    short: int
    long_max: int
    window: int
    stride: int

    def describe(self) -> str:
        size = "input size kept" if self.short <= 0 else f"short side {self.short} px"
        if self.short > 0 and self.long_max > 0:
            size += f" (long side at most {self.long_max} px)"
        tiles = "one whole-image pass" if self.window <= 0 else (
            f"{self.window}-px windows every {self.stride} px where the image is larger, overlaps averaged")
        return f"{size}, {tiles}, prediction resized back to the input size"

    def apply(self, cfg: EvalConfig) -> EvalConfig:
        """`cfg` with this geometry (ZeroShotSegmenter reads resize_short, resize_long_max, mode, window, stride)."""
        if self.window <= 0:
            return dataclasses.replace(cfg, resize_short=self.short, resize_long_max=self.long_max, mode="whole")
        return dataclasses.replace(cfg, resize_short=self.short, resize_long_max=self.long_max, mode="slide",
                                   window=self.window, stride=self.stride)


def check_overrides(size: int | None, window: int | None, stride: int | None) -> None:
    """ValueError naming the flag for values that cannot work (before any model is loaded)."""
    for flag, value in (("--size", size), ("--window", window)):
        if value is not None and value < 0:
            raise ValueError(f"{flag} {value}: must be >= 0 (0 keeps the input size / takes the whole image)")
    if stride is not None and stride <= 0:
        raise ValueError(f"--stride {stride}: must be a positive number of pixels")
    if window and stride and stride > window:
        raise ValueError(f"--stride {stride} is larger than --window {window}: pixels between windows would get no "
                         "prediction; use a stride <= the window")


def resolve_geometry(cfg: EvalConfig, train_size: int, *, size: int | None = None, window: int | None = None,
                     stride: int | None = None) -> Geometry:
    """The geometry for any input from a source's eval config and the model's training resolution.

    eval.resize_short > 0 and eval.mode=slide are used as they are (the paper: 448, 448/224). resize_short 0 means
    the training size; mode=whole means windows of the short side every half window, which is a single whole pass
    for an image of the evaluation's own shape. --size / --window / --stride (the keywords) override.
    """
    check_overrides(size, window, stride)
    short = size if size is not None else (cfg.resize_short if cfg.resize_short > 0 else int(train_size))
    if window is not None:
        win = window
    elif cfg.mode == "slide":
        win = cfg.window
    else:
        win = short  # 0 when the input size is kept: one whole-image pass, as eval.mode=whole does
    if stride is not None:
        step = stride
    elif cfg.mode == "slide" and window is None and win == cfg.window:
        step = cfg.stride
    else:
        step = max(1, win // 2)
    if win > 0 and step > win:
        step = win
    return Geometry(short=short, long_max=cfg.resize_long_max, window=win, stride=step)


def train_size_of(model: Any, default: int = 224) -> int:
    """The square resolution the model was trained at (its config's image.image_size)."""
    for path in ("cfg.image.image_size", "config.image.image_size"):
        obj = model
        try:
            for part in path.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            continue
        if isinstance(obj, int) and obj > 0:
            return obj
    return default


def summary(source: ProtocolSource, geometry: Geometry, bg_thresh: float,
            background: Sequence[str]) -> str:
    """One line for the console: the protocol and where it comes from."""
    bg = f"; background phrases: {', '.join(background)}" if background else "; no background phrases"
    return f"protocol: {geometry.describe()} (from {source.origin}); bg_thresh {bg_thresh:g}{bg}"
