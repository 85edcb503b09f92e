"""The img2dataset backend: build the exact command line and run it from its own environment.

Why a subprocess and not an import: img2dataset (the tool the official GroupViT shards were made with) pins
webdataset<0.3 and pandas<3, which the training environment cannot have. It lives in a separate environment
(workflow/envs/img2dataset.yaml, or the pip venv .venv-img2dataset described in docs/real-data.md) and this module only
needs the path of its `img2dataset` executable (`pairs.img2dataset_executable`).

It reads the filtered pairs file (url<TAB>caption with a header, written by groupvit.data.pairs.download), so
both backends see the same pairs in the same order and cut the same shards; `--incremental_mode incremental`
makes a rerun skip the shards whose *_stats.json exists, the same resume rule as the builtin backend.
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

log = logging.getLogger(__name__)


class Img2datasetMissing(FileNotFoundError):
    """The configured img2dataset executable does not exist."""


def build_command(
    executable: str,
    url_list: str | os.PathLike,
    output_folder: str | os.PathLike,
    *,
    input_format: str = "tsv",
    url_col: str = "url",
    caption_col: str = "caption",
    image_size: int = 512,
    resize_only_if_bigger: bool = True,
    encode_quality: int = 95,
    samples_per_shard: int = 10000,
    processes: int = 1,
    threads: int = 32,
    retries: int = 2,
    timeout: float = 10.0,
) -> list[str]:
    """img2dataset's argument list (python-fire flags; booleans spelled True/False) for webdataset output."""
    if input_format not in ("tsv", "csv", "parquet", "txt", "json", "jsonl"):
        raise ValueError(f"img2dataset input_format {input_format!r} is not one it reads")
    args = {
        "url_list": str(url_list),
        "input_format": input_format,
        "url_col": url_col,
        "caption_col": caption_col,
        "output_format": "webdataset",
        "output_folder": str(output_folder),
        "image_size": image_size,
        "resize_mode": "keep_ratio",
        "resize_only_if_bigger": resize_only_if_bigger,
        "encode_format": "jpg",
        "encode_quality": encode_quality,
        "number_sample_per_shard": samples_per_shard,
        "processes_count": processes,
        "thread_count": threads,
        "retries": retries,
        "timeout": timeout,
        "enable_wandb": False,
        "incremental_mode": "incremental",
    }
    command = [executable]
    for key, value in args.items():
        command += [f"--{key}", str(value)]
    return command


def resolve_executable(executable: str) -> str:
    """An absolute path to the executable (a PATH name or a path), or Img2datasetMissing with the install hint."""
    if os.sep in executable:
        found = executable if os.access(executable, os.X_OK) else None
    else:
        found = shutil.which(executable)
    if not found:
        raise Img2datasetMissing(
            f"img2dataset executable {executable!r} not found. It needs its own environment (it pins webdataset<0.3 "
            "and pandas<3): `python -m venv .venv-img2dataset && .venv-img2dataset/bin/pip install img2dataset`, then "
            "set pairs.img2dataset_executable: .venv-img2dataset/bin/img2dataset (or use the builtin backend)"
        )
    return str(Path(found).absolute())


def run_img2dataset(command: list[str]) -> None:
    """Run img2dataset; its own output goes to this process's stdout/stderr (the workflow's log)."""
    log.info("running %s", " ".join(command))
    result = subprocess.run(command, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"img2dataset exited with status {result.returncode}: {' '.join(command)}")
