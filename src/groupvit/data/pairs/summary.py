"""The success-rate table of a dataset folder, built from the per-shard *_stats.json files of either backend.

Why from the stats files: they are the one record both the builtin downloader and img2dataset write, so the
summary (and the done file the workflow waits for) describes what is on disk, whichever tool put it there.
Writes summary.csv (one row per shard plus a total row) and summary.md (totals, failure reasons, per shard).
"""
from __future__ import annotations

import csv
import io
import json
import os
from collections import Counter
from pathlib import Path

from groupvit.atomic import atomic_write_text
from groupvit.data.pairs.layout import SUMMARY_CSV, SUMMARY_MD, stats_files

COLUMNS = ("shard", "count", "successes", "failed_to_download", "failed_to_resize", "success_rate")


def read_stats(out_dir: str | os.PathLike) -> list[dict]:
    """One row per *_stats.json (sorted by shard), with the counts and the status counts."""
    rows = []
    for path in stats_files(out_dir):
        stats = json.loads(path.read_text())
        count = int(stats.get("count", 0))
        successes = int(stats.get("successes", 0))
        rows.append({
            "shard": path.name[: -len("_stats.json")],
            "count": count,
            "successes": successes,
            "failed_to_download": int(stats.get("failed_to_download", 0)),
            "failed_to_resize": int(stats.get("failed_to_resize", 0)),
            "success_rate": successes / count if count else 0.0,
            "status_dict": dict(stats.get("status_dict") or {}),
        })
    return rows


def totals(rows: list[dict]) -> dict:
    total = {key: sum(r[key] for r in rows) for key in ("count", "successes", "failed_to_download", "failed_to_resize")}
    total["shards"] = len(rows)
    total["success_rate"] = total["successes"] / total["count"] if total["count"] else 0.0
    status: Counter = Counter()
    for row in rows:
        status.update(row["status_dict"])
    total["status_dict"] = dict(status.most_common())
    return total


def _csv_text(rows: list[dict], total: dict) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in [*rows, {**total, "shard": "total"}]:
        writer.writerow([row["shard"], *(row[c] for c in COLUMNS[1:-1]), f"{row['success_rate']:.4f}"])
    return buf.getvalue()


def _markdown(name: str, rows: list[dict], total: dict) -> str:
    lines = [
        f"# Download summary: {name}",
        "",
        f"{total['successes']} of {total['count']} URLs downloaded ({100 * total['success_rate']:.1f}%) in "
        f"{total['shards']} shards; failed to download {total['failed_to_download']}, "
        f"failed to decode/resize {total['failed_to_resize']}.",
        "",
        "| status | count |",
        "| --- | ---: |",
        *(f"| {status} | {count} |" for status, count in total["status_dict"].items()),
        "",
        "| shard | count | successes | failed_to_download | failed_to_resize | success rate |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in [*rows, {**total, "shard": "**total**"}]:
        lines.append(
            f"| {row['shard']} | {row['count']} | {row['successes']} | {row['failed_to_download']} | "
            f"{row['failed_to_resize']} | {100 * row['success_rate']:.1f}% |"
        )
    return "\n".join(lines) + "\n"


def write_summary(out_dir: str | os.PathLike) -> dict:
    """Write summary.csv and summary.md of a dataset folder; return the totals."""
    out = Path(out_dir)
    rows = read_stats(out)
    total = totals(rows)
    atomic_write_text(out / SUMMARY_CSV, _csv_text(rows, total))
    atomic_write_text(out / SUMMARY_MD, _markdown(out.name, rows, total))
    return total
