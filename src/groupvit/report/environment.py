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

from groupvit.train.summary import cpu_model

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
            "started_at": summary.get("started_at"),
            "finished_at": summary.get("finished_at"),
            "cpu": str(summary.get("device", "")).removeprefix("cpu:").split(" (")[0],
            "threads": int(threads.group(1)) if threads else None,
            "torch_version": summary.get("torch_version"),
        })
    return pd.DataFrame(rows, columns=["variant", "seed", "wall_time_s", "train_time_s", "started_at", "finished_at",
                                       "cpu", "threads", "torch_version"])


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def training_time_line(timings: pd.DataFrame) -> str:
    """What the study's training took: the elapsed time from the first run's start to the last run's end where the
    summaries record both (jobs run side by side), else the sum over runs and the longest run, which bound it."""
    if timings.empty:
        return "Training time: no run summaries found."
    if {"started_at", "finished_at"} <= set(timings) and timings[["started_at", "finished_at"]].notna().all().all():
        start, end = pd.to_datetime(timings["started_at"]).min(), pd.to_datetime(timings["finished_at"]).max()
        return (f"Training time: {_minutes((end - start).total_seconds())} elapsed for {len(timings)} runs, from the "
                f"first run's start ({start:%Y-%m-%d %H:%M} UTC) to the last run's final model; data synthesis, "
                "evaluation and tables are not included.")
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
    cpus = sorted({c for c in timings.get("cpu", pd.Series(dtype=object)).dropna() if c and c != "cuda"})
    trained_on = f"The runs trained on: {', '.join(cpus)}{per_job}. " if cpus else ""
    return (f"Software: {software}{trained}. {trained_on}This report was rendered on {cpu_model()}, "
            f"{os.cpu_count()} logical CPUs{'' if cpus else per_job}.")


__all__ = ["cpu_model", "environment_line", "run_timings", "training_time_line", "versions"]
