"""Training checkpoints: atomic, self-describing, loadable with torch.load(weights_only=True), pruned to the last K.

A checkpoint holds everything a killed run needs to continue as if it had never stopped: model, optimiser, grad
scaler, schedule, step, data position (micro-batches consumed, which the loader skips exactly on resume) and the RNG
states of every rank (python, numpy, torch, cuda). RNG states are stored as tensors and plain lists, the config as a
plain dict, so loading never unpickles arbitrary objects. Files are written to a temporary name in the same folder
and moved into place with os.replace, so a crash mid-write leaves the previous checkpoint intact.

These are training-state files (checkpoints/step-NNNNNNNN.pt); the final weights that evaluation reads are written
separately as model.pt with groupvit.model.save_checkpoint.
"""
from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from groupvit.atomic import atomic_open
FORMAT = "groupvit-train-state"
VERSION = 1
_NAME = re.compile(r"^step-(\d{8,})\.pt$")


def capture_rng_state() -> dict[str, Any]:
    """This process's RNG states as tensors and plain scalars (weights_only-safe)."""
    version, mt_state, gauss = random.getstate()
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": {"version": int(version), "state": torch.tensor(mt_state, dtype=torch.int64), "gauss": gauss},
        "numpy": {
            "kind": str(np_kind), "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
            "pos": int(np_pos), "has_gauss": int(np_has_gauss), "gauss": float(np_gauss),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of capture_rng_state."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state(
        (npy["kind"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"], npy["gauss"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """torch.save to a temporary file beside `path`, fsync, then os.replace: readers never see a partial file."""
    path = Path(path)
    with atomic_open(path, "wb", fsync=True) as handle:
        torch.save(obj, handle)
    return path


def load_train_state(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a training checkpoint with weights_only=True and check it is one."""
    state = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"{path}: not a {FORMAT} checkpoint (format={found!r})")
    if state.get("version", 0) > VERSION:
        raise ValueError(f"{path}: checkpoint version {state['version']} is newer than this code's {VERSION}")
    return state


class CheckpointManager:
    """Writes checkpoints/step-NNNNNNNN.pt under a run directory, keeping the newest `keep`."""

    def __init__(self, directory: str | Path, keep: int = 3) -> None:
        self.directory = Path(directory)
        self.keep = max(1, keep)

    def path_for(self, step: int) -> Path:
        return self.directory / f"step-{step:08d}.pt"

    def list(self) -> list[Path]:
        """Existing checkpoints, oldest first."""
        if not self.directory.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.directory.iterdir() if (m := _NAME.match(p.name))]
        return [p for _, p in sorted(found)]

    def latest(self) -> Path | None:
        paths = self.list()
        return paths[-1] if paths else None

    def save(self, step: int, state: dict[str, Any]) -> Path:
        state = {"format": FORMAT, "version": VERSION, "step": step, **state}
        path = atomic_torch_save(state, self.path_for(step))
        for old in self.list()[: -self.keep]:
            old.unlink(missing_ok=True)
        return path


__all__ = [
    "CheckpointManager", "FORMAT", "atomic_torch_save", "capture_rng_state", "load_train_state",
    "restore_rng_state",
]
