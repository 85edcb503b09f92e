"""The facts a reader needs to judge a study's numbers and timings: software versions, the CPU, threads per job, and
the training wall time read from the run summaries (runs/<preset>/<variant>/seed<N>/summary.json)."""
from __future__ import annotations

import json
import os
import platform
import re
from importlib import metadata
from pathlib import Path

import pandas as pd

PACKAGES = ("torch", "snakemake", "dvc")


def versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """The installed version of each package (and Python's), "not installed" where it is missing."""
    found = {"python": platform.python_version()}
    for name in packages:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else what the platform module knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        match = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(errors="replace"), flags=re.M)
        if match:
            return match.group(1).strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def run_timings(runs_dir: Path) -> pd.DataFrame:
    """One row per run summary: variant, seed, wall_time_s (process start to final model written), train_time_s
    (the training loop alone), threads (torch threads of the job) and the torch version the run used."""
    rows = []
    for path in sorted(Path(runs_dir).glob("*/seed*/summary.json")):
        summary = json.loads(path.read_text())
        threads = re.search(r"\((\d+) threads\)", str(summary.get("device", "")))
        rows.append({
            "variant": summary.get("variant", path.parent.parent.name),
            "seed": int(summary.get("seed", path.parent.name.removeprefix("seed"))),
            "wall_time_s": summary.get("wall_time_s"),
            "train_time_s": summary.get("train_time_s"),
            "threads": int(threads.group(1)) if threads else None,
            "torch_version": summary.get("torch_version"),
        })
    return pd.DataFrame(rows, columns=["variant", "seed", "wall_time_s", "train_time_s", "threads", "torch_version"])


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def training_time_line(timings: pd.DataFrame) -> str:
    """What the study's training cost, from per-run timings (run_timings, or the runs table's train_time_s), with
    what the number covers: the summaries hold durations, not start and end times, so the elapsed time of a study
    that ran jobs side by side is not known; the sum over runs and the longest run bound it."""
    if timings.empty:
        return "Training time: no run summaries found."
    column = "wall_time_s" if "wall_time_s" in timings and timings["wall_time_s"].notna().all() else "train_time_s"
    if column not in timings or timings[column].isna().all():
        return "Training time: the run summaries record no durations."
    seconds = timings[column].dropna()
    runs = f"{len(seconds)} run" + ("s" if len(seconds) != 1 else "")
    what = ("each run's process from start to final model written" if column == "wall_time_s"
            else "each run's training loop alone, without start-up and saving")
    return (f"Training time: {_minutes(seconds.sum())} summed over {runs}, longest run "
            f"{_minutes(seconds.max())} ({what}; jobs that ran side by side overlap, so the study's elapsed training "
            f"time lies between the two; data synthesis, evaluation and tables are not included).")


def environment_line(timings: pd.DataFrame) -> str:
    """One line: software versions, the CPU model, logical CPUs, threads per training job, and the torch version the
    runs recorded where it differs from the installed one."""
    found = versions()
    software = ", ".join(f"{name} {version}" for name, version in found.items())
    threads = sorted({int(t) for t in timings.get("threads", pd.Series(dtype=float)).dropna()})
    per_job = f"; torch threads per training job: {'/'.join(map(str, threads))}" if threads else ""
    recorded = sorted({str(v) for v in timings.get("torch_version", pd.Series(dtype=object)).dropna()})
    differs = any(v.split("+")[0] != found.get("torch") for v in recorded)  # "+cu130": the same release
    trained = f"; the runs trained with torch {', '.join(recorded)}" if differs else ""
    return (f"Software: {software}{trained}. CPU of the machine that rendered this report: {cpu_model()}, "
            f"{os.cpu_count()} logical CPUs{per_job}.")


__all__ = ["cpu_model", "environment_line", "run_timings", "training_time_line", "versions"]
