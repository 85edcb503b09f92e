"""One dataset, end to end: list files -> filtered pairs file -> shards (either backend) -> summary -> done.json.

Why the steps are split this way:
- The filtered pairs file (_pairs/pairs.tsv) is written once and read by both backends, so shard i always holds the
  same URLs, whichever backend ran, however often the job was interrupted.
- _pairs/plan.json records what the folder was made from (list sha256s, format, filter, image and shard
  settings). A rerun with different settings stops with the differing fields instead of mixing two datasets
  in one folder; a rerun with the same settings resumes (finished shards are skipped, see .builtin).
- _pairs/done.json is written last, only when every shard is finished and at least one image arrived: it is what
  Snakemake waits for. A run in which no URL at all could be fetched raises DownloadError naming the lists,
  and removes its stats files so that the next run tries those shards again (a network outage looks the same
  as a dead list, and must not leave "finished" empty shards behind).
"""
from __future__ import annotations

import csv
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from groupvit.atomic import atomic_open, atomic_write_json, sha256_file
from groupvit.data.pairs.builtin import FetchSettings, run_builtin
from groupvit.data.pairs.config import BACKENDS, PairsConfig, PairsDatasetConfig
from groupvit.data.pairs.filter import FilterReport, filter_pairs
from groupvit.data.pairs.img2dataset_backend import build_command, resolve_executable, run_img2dataset
from groupvit.data.pairs.layout import (
    DONE_FILE, PAIRS_FILE, PLAN_FILE, is_finished, num_shards, shard_files, shard_name,
)
from groupvit.data.pairs.lists import get_format, read_pairs, resolve_list_files
from groupvit.data.pairs.summary import write_summary

log = logging.getLogger(__name__)

# Settings that decide a folder's contents; a rerun must match them (workers, retries, timeout may change).
PLAN_KEYS = ("lists", "format", "url_col", "caption_col", "min_caption_words", "samples_per_shard", "image_size",
             "resize_only_if_bigger", "encode_quality", "backend")


class DownloadError(RuntimeError):
    """A download that cannot produce a usable dataset folder; the message says which lists and why."""


@dataclass
class DownloadResult:
    out_dir: Path
    filter: dict
    totals: dict
    shards_done_now: list[str]


def _plan(files: list[str], dataset: PairsDatasetConfig, cfg: PairsConfig, min_words: int) -> dict:
    return {
        "lists": [{"path": f, "sha256": sha256_file(f)} for f in files],
        "format": dataset.format,
        "url_col": dataset.url_col,
        "caption_col": dataset.caption_col,
        "min_caption_words": min_words,
        "samples_per_shard": cfg.samples_per_shard,
        "image_size": cfg.image_size,
        "resize_only_if_bigger": cfg.resize_only_if_bigger,
        "encode_quality": cfg.encode_quality,
        "backend": cfg.backend,
    }


def _comparable(plan: dict, key: str):
    """Lists are compared by content (sha256), so a moved or renamed list file still resumes."""
    if key == "lists":
        return [item["sha256"] for item in plan.get("lists", [])]
    return plan.get(key)


def _check_sha256(files: list[str], expected: str) -> None:
    if not expected:
        return
    if len(files) != 1:
        raise DownloadError(f"sha256 is set but the url list names {len(files)} files ({files[:3]}...)")
    actual = sha256_file(files[0])
    if actual != expected.lower():
        raise DownloadError(f"{files[0]}: sha256 {actual} does not match the configured {expected}")


def prepare_pairs(files: list[str], dataset: PairsDatasetConfig, cfg: PairsConfig, out: Path) -> tuple[dict, dict]:
    """(plan, filter report dict): reuse the folder's pairs file when its plan matches, else write both."""
    min_words = max(cfg.min_caption_words, get_format(dataset.format).min_caption_words)
    plan = _plan(files, dataset, cfg, min_words)
    plan_path, pairs_path = out / PLAN_FILE, out / PAIRS_FILE
    if plan_path.is_file():
        old = json.loads(plan_path.read_text())
        differing = [k for k in PLAN_KEYS if _comparable(old, k) != _comparable(plan, k)]
        if differing:
            raise DownloadError(
                f"{out} was made with other settings ({', '.join(differing)} differ from {PLAN_FILE}); "
                "delete the folder or choose another output_dir to download again"
            )
        if pairs_path.is_file():
            return old, old["filter"]
    report = FilterReport()
    pairs = filter_pairs(read_pairs(files, dataset.format, url_col=dataset.url_col, caption_col=dataset.caption_col),
                         report, min_caption_words=min_words)
    with atomic_open(pairs_path, "w") as handle:
        writer = csv.writer(handle, delimiter="\t", quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
        writer.writerow(["url", "caption"])
        writer.writerows(pairs)
    log.info("%s: %s", ", ".join(files), report.summary())
    plan.update(filter=report.to_dict(), pairs=report.kept, shards=num_shards(report.kept, cfg.samples_per_shard))
    atomic_write_json(plan, plan_path)
    return plan, plan["filter"]


def _settings(cfg: PairsConfig, backoff: float) -> FetchSettings:
    return FetchSettings(
        image_size=cfg.image_size, resize_only_if_bigger=cfg.resize_only_if_bigger, encode_quality=cfg.encode_quality,
        samples_per_shard=cfg.samples_per_shard, workers=cfg.workers, retries=cfg.retries, timeout=cfg.timeout,
        backoff=backoff,
    )


def download_dataset(
    dataset: PairsDatasetConfig, cfg: PairsConfig, out_dir: str | os.PathLike, *, backoff: float = 1.0,
    list_files: list[str] | None = None,
) -> DownloadResult:
    """Download (or resume) one dataset into `out_dir`; see the module docstring. `list_files` overrides the
    dataset's url_list (the CLI's --list)."""
    if cfg.backend not in BACKENDS:
        raise DownloadError(f"pairs.backend {cfg.backend!r} is not one of {list(BACKENDS)}")
    out = Path(out_dir)
    try:
        files = resolve_list_files(list_files or dataset.url_list, dataset.format)
    except FileNotFoundError as exc:
        raise DownloadError(f"dataset {dataset.name or out.name}: {exc}") from None
    _check_sha256(files, dataset.sha256)
    out.mkdir(parents=True, exist_ok=True)
    (out / DONE_FILE).unlink(missing_ok=True)
    where = ", ".join(files)
    plan, report = prepare_pairs(files, dataset, cfg, out)
    if plan["pairs"] == 0:
        raise DownloadError(
            f"no usable URL/caption pair in {where} ({report['read']} read, dropped {report['dropped']})"
        )
    total = plan["shards"]
    if cfg.backend == "builtin":
        done_now = run_builtin(out / PAIRS_FILE, out, plan["pairs"], _settings(cfg, backoff), processes=cfg.processes)
    else:
        executable = resolve_executable(cfg.img2dataset_executable)
        run_img2dataset(build_command(
            executable, out / PAIRS_FILE, out, input_format="tsv", url_col="url", caption_col="caption",
            image_size=cfg.image_size, resize_only_if_bigger=cfg.resize_only_if_bigger,
            encode_quality=cfg.encode_quality, samples_per_shard=cfg.samples_per_shard, processes=cfg.processes,
            threads=cfg.workers, retries=cfg.retries, timeout=cfg.timeout,
        ))
        done_now = []
    missing = [shard_name(i, total) for i in range(total) if not is_finished(out, shard_name(i, total))]
    if missing:
        raise DownloadError(
            f"{out}: {len(missing)} of {total} shards unfinished after the run ({missing[:5]}...); rerun to resume"
        )
    totals = write_summary(out)
    if totals["successes"] == 0:
        for i in range(total):
            shard_files(out, shard_name(i, total))["stats"].unlink(missing_ok=True)
        statuses = ", ".join(f"{k}: {v}" for k, v in list(totals["status_dict"].items())[:5])
        raise DownloadError(
            f"no image could be downloaded from {where}: {totals['count']} URLs tried ({statuses}). "
            "Check the list and the network; a rerun tries these shards again"
        )
    atomic_write_json({"dataset": dataset.name or out.name, "lists": plan["lists"], "filter": report, **totals,
                       "plan": {k: plan[k] for k in PLAN_KEYS if k != "lists"}}, out / DONE_FILE)
    log.info("%s: %d of %d URLs downloaded (%.1f%%) in %d shards; summary in %s", out, totals["successes"],
             totals["count"], 100 * totals["success_rate"], total, out / "summary.md")
    return DownloadResult(out, report, totals, done_now)
