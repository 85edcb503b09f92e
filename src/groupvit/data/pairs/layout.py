"""img2dataset's output layout, written down once: shard and key names, per-shard files, what "finished" means.

Why it matters: the training reader (groupvit.data.shards) and the paper preset's `data.shards` patterns
(`<dataset>/{00000..N}.tar`) expect exactly this layout, and both backends (builtin and img2dataset) must produce
it so that either can resume the other's folder structure and the summary reads both.

A dataset folder holds, per shard NNNNN (zero-padded to at least 5 digits, like img2dataset's oom_shard_count):
  NNNNN.tar            KEY.jpg / KEY.txt / KEY.json for each downloaded sample, in list order
  NNNNN.parquet|.csv   one row per URL of the shard, failed ones included (CSV when no parquet engine)
  NNNNN_stats.json     count, successes, failed_to_download, failed_to_resize, status_dict, ...
KEY = shard index and sample index, zero-padded and concatenated (no dots: webdataset splits keys at dots).
A shard is finished when its stats file exists: it is written last, atomically, after the tar.
Beside the shards: summary.csv/.md, and in _pairs/: pairs.tsv (the filtered list both backends read), plan.json
(what the folder was made from) and done.json (written last; what the workflow waits for).
"""
from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from groupvit.data.pairs.config import PairsConfig

MIN_SHARD_DIGITS = 5
# Bookkeeping lives in a subfolder: img2dataset's resume globs the top level's *.json and reads every name as a
# shard number (a top-level done.json makes it crash).
META_DIR = "_pairs"
DONE_FILE = f"{META_DIR}/done.json"
PAIRS_FILE = f"{META_DIR}/pairs.tsv"
PLAN_FILE = f"{META_DIR}/plan.json"
SUMMARY_CSV = "summary.csv"
SUMMARY_MD = "summary.md"


def num_shards(num_pairs: int, samples_per_shard: int) -> int:
    return math.ceil(num_pairs / samples_per_shard)


def shard_digits(total_shards: int) -> int:
    return max(MIN_SHARD_DIGITS, len(str(max(0, total_shards - 1))))


def shard_name(shard_id: int, total_shards: int) -> str:
    return f"{shard_id:0{shard_digits(total_shards)}d}"


def sample_digits(samples_per_shard: int) -> int:
    return max(1, math.ceil(math.log10(samples_per_shard))) if samples_per_shard > 1 else 1


def sample_key(shard_id: int, index: int, samples_per_shard: int, total_shards: int) -> str:
    """img2dataset's key: shard_id * 10^d + index, zero-padded to (shard digits + d) characters."""
    digits = sample_digits(samples_per_shard)
    return f"{shard_id * 10**digits + index:0{shard_digits(total_shards) + digits}d}"


def shard_files(out_dir: str | os.PathLike, name: str) -> dict[str, Path]:
    out = Path(out_dir)
    return {
        "tar": out / f"{name}.tar",
        "stats": out / f"{name}_stats.json",
        "parquet": out / f"{name}.parquet",
        "csv": out / f"{name}.csv",
    }


def is_finished(out_dir: str | os.PathLike, name: str) -> bool:
    files = shard_files(out_dir, name)
    return files["stats"].is_file() and files["tar"].is_file()


def stats_files(out_dir: str | os.PathLike) -> list[Path]:
    return sorted(Path(out_dir).glob("*_stats.json"))


def pairs_root(pairs: "PairsConfig", preset: str) -> str:
    """Where the dataset folders go: pairs.output_dir, or data/<preset>/shards."""
    return (pairs.output_dir or f"data/{preset}/shards").rstrip("/")


def dataset_dir(pairs: "PairsConfig", preset: str, name: str) -> str:
    return f"{pairs_root(pairs, preset)}/{name}"


def _pattern_complete(pattern: str) -> bool:
    """Whether every shard a data.shards pattern names exists (a folder: holds a *.tar; a glob: matches one)."""
    import glob

    from braceexpand import braceexpand

    for path in braceexpand(pattern):
        if os.path.isdir(path):
            if not any(Path(path).glob("*.tar")):
                return False
        elif glob.has_magic(path):
            if not glob.glob(path):
                return False
        elif not os.path.isfile(path):
            return False
    return True


def _under(pattern: str, folder: str) -> bool:
    norm_pattern, norm_folder = os.path.normpath(pattern), os.path.normpath(folder)
    return norm_pattern == norm_folder or norm_pattern.startswith(norm_folder + os.sep)


def datasets_to_download(pairs: "PairsConfig", preset: str, shard_patterns: Iterable[str]) -> list[str]:
    """The pairs datasets the workflow must download: `shard_patterns` (the preset's data.shards when it trains on
    webdataset shards, else none) name shards inside the dataset's folder, and some of them are missing."""
    patterns = list(shard_patterns)
    names = []
    for dataset in pairs.datasets:
        folder = dataset_dir(pairs, preset, dataset.name)
        mine = [p for p in patterns if _under(p, folder)]
        # A folder pattern is "complete" as soon as one shard exists, so an interrupted download (its bookkeeping
        # folder without the done file) must count as missing too, or training would start on part of the data.
        interrupted = (Path(folder) / META_DIR).is_dir() and not (Path(folder) / DONE_FILE).is_file()
        if mine and (interrupted or not all(_pattern_complete(p) for p in mine)):
            names.append(dataset.name)
    return names


def datasets_to_wait_for(pairs: "PairsConfig", preset: str, shard_patterns: Iterable[str]) -> list[str]:
    """The pairs datasets whose done file training takes as input: those to download, and the finished downloads
    among the datasets the patterns name. A finished download stays an input, so the input set is the same before and
    after the download (Snakemake reruns a job whose input set changed); shards put in place without a download (no
    done file) are never an input."""
    patterns = list(shard_patterns)
    missing = datasets_to_download(pairs, preset, patterns)
    names = []
    for dataset in pairs.datasets:
        folder = dataset_dir(pairs, preset, dataset.name)
        downloaded = any(_under(p, folder) for p in patterns) and (Path(folder) / DONE_FILE).is_file()
        if dataset.name in missing or downloaded:
            names.append(dataset.name)
    return names


def content_settings(pairs: "PairsConfig") -> dict:
    """The pairs settings that decide a folder's contents (a change must rerun the download)."""
    keys = ("image_size", "resize_only_if_bigger", "encode_quality", "samples_per_shard", "min_caption_words",
            "backend")
    return {key: getattr(pairs, key) for key in keys}
