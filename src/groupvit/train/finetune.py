"""Fine-tuning: start a fresh run from released or earlier weights (train.init_from), train only part of the model
(train.freeze).

init_from is not a resume: the run gets a new optimiser, schedule and step count; only the weights come from the file
(any file `groupvit.model.load_model` reads: ours, the official NVlabs .pth, a Hugging Face folder). The model is built
from the run's config and the weights must fit it. A frozen group's parameters get requires_grad False, so the
optimiser and DDP never see them; buffers (the projection heads' BatchNorm running statistics) still update in training
mode, as for any frozen parameter in PyTorch.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from groupvit.dataclass_io import ConfigError, flatten

_GROUP_TOKEN = ".group_token"


def _under(prefix: str) -> Callable[[str], bool]:
    return lambda name: name == prefix or name.startswith(prefix + ".")


# train.freeze names -> which parameters (by their name in GroupViTModel) they freeze.
FREEZE_GROUPS: dict[str, Callable[[str], bool]] = {
    "image_encoder": _under("image_encoder"),
    # the image encoder but its learned group tokens: fine-tune only the group tokens of the vision tower
    "image_encoder.except_group_tokens": lambda n: _under("image_encoder")(n) and not n.endswith(_GROUP_TOKEN),
    "text_encoder": _under("text_encoder"),
    "image_head": _under("image_head"),
    "text_head": _under("text_head"),
    "logit_scale": _under("logit_scale"),
    "multi_label_logit_scale": _under("multi_label_logit_scale"),
}


@dataclasses.dataclass(frozen=True)
class FreezeResult:
    trainable: int  # parameter elements that train
    frozen: int  # parameter elements that do not (train.freeze, plus any the model froze itself)
    frozen_names: tuple[str, ...]  # parameters frozen by train.freeze


def freeze_groups(model: nn.Module, names: Sequence[str]) -> FreezeResult:
    """Set requires_grad False on every parameter of the named groups (FREEZE_GROUPS); call before building the
    optimiser. ConfigError for an unknown name, a group that matches no parameter, or nothing left to train."""
    valid = ", ".join(FREEZE_GROUPS)
    unknown = [n for n in names if n not in FREEZE_GROUPS]
    if unknown:
        raise ConfigError(f"train.freeze: {unknown[0]!r} is not a parameter group; valid names: {valid}")
    params = dict(model.named_parameters())
    frozen: dict[str, None] = {}  # ordered set
    for group in names:
        matched = [n for n in params if FREEZE_GROUPS[group](n)]
        if not matched:
            raise ConfigError(f"train.freeze: {group!r} matches no parameter of this model "
                              f"({type(model).__name__}); valid names: {valid}")
        frozen.update(dict.fromkeys(matched))
    for name in frozen:
        params[name].requires_grad_(False)
    trainable = sum(p.numel() for p in params.values() if p.requires_grad)
    if not trainable:
        raise ConfigError(f"train.freeze: {list(names)} freezes every parameter; nothing would train")
    total = sum(p.numel() for p in params.values())
    return FreezeResult(trainable, total - trainable, tuple(frozen))


def init_from_weights(model: nn.Module, path: str | Path, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Load the weights of `path` into `model` (built from the run's config) and return what the summary records:
    {path, sha256, source_format}. A file whose weights do not fit the model is a ConfigError naming the file, the first
    mismatching keys and the fix."""
    from groupvit.atomic import sha256_file
    from groupvit.model.checkpoint import checkpoint_filter_fn, load_checkpoint_state, weights_file
    from groupvit.model.state_dict_utils import ArchitectureMismatch, check_compatible

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"train.init_from: {path}: no such file or folder (give a model.pt, an official .pth or a "
                          "Hugging Face model folder)")
    try:
        state = load_checkpoint_state(path, map_location="cpu")
        sd = checkpoint_filter_fn(state["state_dict"], model)
        check_compatible(model, sd, source=f"{path} ({state['source']} format)")
    except ArchitectureMismatch as err:
        differing = ", ".join(f"{key}={_as_override(old)} (run: {_as_override(new)})"
                              for key, old, new in _config_differences(state, model))
        raise ConfigError(
            f"train.init_from: {err}. The run builds its model from model.*: set those keys to the source's "
            f"architecture (`groupvit config show` prints the run's)"
            + (f"; the source's (as stored, or as read from its weights, head counts by the official rule) "
               f"differs in {differing}" if differing else "")
        ) from err
    except (ValueError, FileNotFoundError) as err:
        raise ConfigError(f"train.init_from: {err}") from err
    model.load_state_dict(sd)
    if state["source"] == "ours" or path.is_dir():  # files that store their config (others get one inferred)
        differing = [f"{key}: {old!r} -> {new!r}" for key, old, new in _config_differences(state, model)]
        if differing:  # the shapes fit, yet settings the weights cannot show (heads, init, noise) differ
            say(f"note: the run's model.* differs from {path}'s stored config in {', '.join(differing[:6])}"
                + (", ..." if len(differing) > 6 else ""))
    return {"path": str(path.resolve()), "sha256": sha256_file(weights_file(path)), "source_format": state["source"]}


def _config_differences(state: dict, model: nn.Module) -> list[tuple[str, Any, Any]]:
    """(model.key, source value, run value) for each setting where the source's config (stored, or inferred from its
    weights) differs from the run's model."""
    cfg = getattr(model, "cfg", None)
    if not dataclasses.is_dataclass(cfg) or not isinstance(state.get("config"), dict):
        return []
    source, run = flatten(state["config"]), flatten(dataclasses.asdict(cfg))
    return [(f"model.{k}", source[k], run[k]) for k in sorted(source.keys() & run.keys()) if source[k] != run[k]]


def _as_override(value: Any) -> str:
    """A value as `--set KEY=VALUE` takes it (YAML): false, [1,1,1], linear."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


__all__ = ["FREEZE_GROUPS", "FreezeResult", "freeze_groups", "init_from_weights"]
