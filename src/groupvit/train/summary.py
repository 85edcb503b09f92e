"""The run summary (summary.json): what was trained, on what, by which code, how fast, and with what result.

It is the provenance record the workflow and the reports read, so it carries the resolved config, the data's
content hash and the git commit next to the figures, and it is written atomically (a reader never sees half).
"""
from __future__ import annotations

import json
import math
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

import torch

from groupvit.atomic import atomic_write_json


def git_commit(cwd: str | Path | None = None) -> str:
    """`git rev-parse HEAD` of the source tree, or "unknown" outside a repository / without commits."""
    cwd = Path(cwd) if cwd is not None else Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else what the platform module knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        match = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(errors="replace"), flags=re.M)
        if match:
            return match.group(1).strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{cpu_model()} ({torch.get_num_threads()} threads)"


def write_summary_json(obj: Any, path: str | Path) -> Path:
    """The summary as JSON, atomically (Paths and tensors converted)."""
    return atomic_write_json(obj, path, default=_jsonable)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, torch.Tensor):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def build_summary(config: dict, result: Any, **facts: Any) -> dict:
    """The run summary: the caller's facts (variant, seed, data hash, batch layout, lr, ...), what the loop
    reports (`result`: a loop.LoopResult), provenance (git commit, torch version) and the resolved config last.
    `wall_time_s` is left None for the caller to fill once the final model is written."""
    state, timing = result.state, result.timing
    return {
        **facts,
        "git_commit": git_commit(),
        "torch_version": torch.__version__,
        "steps": state.step,
        "samples_seen": state.samples_seen,
        "skipped_steps": state.skipped_steps,
        "budget_limited": result.budget_limited,
        "train_time_s": state.train_time_s,
        "wall_time_s": None,
        "final_loss": result.final_losses.get("loss", math.nan),
        "final_losses": result.final_losses,
        "mean_last_losses": result.mean_last_losses,  # over the last `loss_window` steps
        "samples_per_s": timing["samples_per_s"],
        "data_wait_frac": timing["data_wait_frac"],
        "loop_overhead_frac": timing["overhead_frac"],
        "last_checkpoint": str(result.last_checkpoint) if result.last_checkpoint else None,
        "config": config,
    }


RUN_FIGURES = ("final_loss", "final_losses", "mean_last_losses", "samples_per_s", "data_wait_frac",
               "loop_overhead_frac")


def run_figures(summary_copy: Path, step: int) -> dict:
    """The training figures of the summary copy written when the run reached `step` ({} when there is none)."""
    if not summary_copy.exists():
        return {}
    previous = json.loads(summary_copy.read_text())
    return {k: previous[k] for k in RUN_FIGURES if k in previous} if previous.get("steps") == step else {}


def finished_summary(summary_path: Path, state: Any, total_steps: int, budget_s: float) -> dict | None:
    """The existing summary when the newest checkpoint (its loop.LoopState `state`) is where that run ended and
    nothing is left to train (all steps done, or the time budget, possibly raised since, is spent)."""
    if not summary_path.exists() or json.loads(summary_path.read_text()).get("steps") != state.step:
        return None
    out_of_budget = budget_s > 0 and state.train_time_s >= budget_s
    return json.loads(summary_path.read_text()) if state.step >= total_steps or out_of_budget else None


__all__ = ["build_summary", "device_description", "finished_summary", "git_commit", "run_figures",
           "write_summary_json"]
