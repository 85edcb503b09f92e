"""Per-step metrics as JSON lines, and the timers that turn step times into throughput and data-wait fractions.

Only the master process writes. Values arrive as tensors or floats; tensors are converted with one `.item()` per
logged step, which is why logging happens every `log_every` steps and never inside the hot path otherwise.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, TextIO

import torch


def to_float(value: Any) -> float:
    """A tensor or number as a float (non-finite values kept; JSON writes them as NaN/Infinity)."""
    if isinstance(value, torch.Tensor):
        return float(value.detach().float().item())
    return float(value)


class MetricsLogger:
    """Appends one JSON object per logged step to `path` (append mode: a resumed run continues the same file)."""

    def __init__(self, path: str | Path | None, enabled: bool = True) -> None:
        self.path = Path(path) if path is not None else None
        self.enabled = enabled and self.path is not None
        self._handle: TextIO | None = None
        if self.enabled:
            assert self.path is not None
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.path, "a", buffering=1)

    def log(self, record: dict[str, Any]) -> None:
        if self._handle is None:
            return
        clean = {k: (to_float(v) if isinstance(v, torch.Tensor) else v) for k, v in record.items()}
        self._handle.write(json.dumps(clean, allow_nan=True) + "\n")

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> "MetricsLogger":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def truncate_after(path: str | Path, step: int) -> None:
    """Drop records with step > `step` (those a killed run logged after its last checkpoint) before resuming,
    so a resumed metrics.jsonl reads like an uninterrupted run's."""
    path = Path(path)
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("step", -1) <= step:
                keep.append(line)
        except json.JSONDecodeError:
            continue  # a line cut by the kill
    path.write_text("".join(line + "\n" for line in keep))


class StepTimer:
    """Wall time split into waiting for data and everything else, cumulative and since the last report."""

    def __init__(self) -> None:
        self.total_wait = 0.0
        self.total_time = 0.0
        self.total_samples = 0
        self._window_wait = 0.0
        self._window_time = 0.0
        self._window_samples = 0
        self._mark = time.perf_counter()

    def restart(self) -> None:
        self._mark = time.perf_counter()

    def data_ready(self) -> float:
        """Call when a batch has arrived; returns the seconds spent waiting for it."""
        now = time.perf_counter()
        wait = now - self._mark
        self.total_wait += wait
        self._window_wait += wait
        return wait

    def step_done(self, samples: int) -> None:
        """Call when the optimiser step is finished (after any host sync the step needs)."""
        now = time.perf_counter()
        elapsed = now - self._mark
        self._mark = now
        self.total_time += elapsed
        self._window_time += elapsed
        self.total_samples += samples
        self._window_samples += samples

    def window(self) -> dict[str, float]:
        """Throughput and data-wait fraction since the previous call."""
        t = self._window_time
        out = {
            "samples_per_s": self._window_samples / t if t > 0 else math.nan,
            "data_wait_frac": self._window_wait / t if t > 0 else math.nan,
        }
        self._window_wait = self._window_time = 0.0
        self._window_samples = 0
        return out

    def totals(self) -> dict[str, float]:
        t = self.total_time
        return {
            "samples_per_s": self.total_samples / t if t > 0 else math.nan,
            "data_wait_frac": self.total_wait / t if t > 0 else math.nan,
            "train_time_s": t,
        }


__all__ = ["MetricsLogger", "StepTimer", "to_float", "truncate_after"]
