"""A local folder of images with captions -> shards in the downloads' layout (see .layout), with no URLs.

Captions come from side-car text files (`photos/cat.jpg` + `photos/cat.txt`, searched recursively) or from one
table naming `path` and `caption` per row: CSV or TSV with a header, or JSON Lines (one object per line); paths are
relative to the source folder. The listing is sorted by path (side-car) or kept in table order, filtered, written to
_pairs/pairs.tsv (the image path in the `url` column) and cut into shards by the built-in writer with a local-file
reader, so the tars, sample tables, stats, summary and done file are those of a download, and the training reader
takes the folder like any other (`data.shards: [OUT]`).

Skipped before any image is read, and counted in the filter report (`DROP_REASONS`): malformed (a table row without
both columns), missing_caption (no side-car file), non_utf8_caption (a caption that is not UTF-8), empty_caption,
short_caption, duplicate_key (a second image with the same path minus its suffix: webdataset would merge the two),
missing_image (a table path that is no file). Counted while writing, like a download's failures: an image file that
cannot be read (failed_to_download, "unreadable file") or decoded (failed_to_resize, "image decoding error").
A rerun resumes: finished shards are kept when the listing and the settings are unchanged; otherwise it stops with
what differs. The same folder and settings give the same tar bytes.
"""
from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from groupvit.atomic import atomic_open, atomic_write_json, sha256_file
from groupvit.data.pairs.builtin import FetchSettings, run_builtin
from groupvit.data.pairs.fetch import FetchError
from groupvit.data.pairs.filter import FilterReport, caption_problem, normalise_caption
from groupvit.data.pairs.layout import DONE_FILE, PAIRS_FILE, PLAN_FILE, is_finished, num_shards, shard_files, \
    shard_name
from groupvit.data.pairs.summary import write_summary

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl")
PATH_COLUMNS = ("path", "image", "file", "filename", "image_path")
CAPTION_COLUMNS = ("caption", "text", "title")
DROP_REASONS = ("malformed", "missing_caption", "non_utf8_caption", "empty_caption", "short_caption",
                "duplicate_key", "missing_image")
BACKEND = "folder"
# Settings that decide the shards' contents; a rerun must match them (workers and processes may change).
PLAN_KEYS = ("listing_sha256", "min_caption_words", "samples_per_shard", "image_size", "resize_only_if_bigger",
             "encode_quality", "backend")


class FolderDataError(RuntimeError):
    """A folder that cannot become a dataset (nothing usable, bad table, changed since the last run)."""


class FolderReport(FilterReport):
    """What the listing held and why entries were skipped before any image was read."""

    REASONS = DROP_REASONS
    READ = "images or rows read"


@dataclass(frozen=True)
class FolderSettings:
    """How images become shards (the `pairs` section's image and shard settings, or the CLI's flags)."""

    image_size: int = 512
    resize_only_if_bigger: bool = True
    encode_quality: int = 95
    samples_per_shard: int = 10000
    min_caption_words: int = 1
    workers: int = 8
    processes: int = 1


@dataclass
class FolderResult:
    out_dir: Path
    filter: dict
    totals: dict
    shards_done_now: list[str]


# ---- listing -------------------------------------------------------------------------------------------------------
def _key(path: str) -> str:
    """The sample identity: the path without its suffix (what webdataset groups a sample's files by)."""
    pure = PurePosixPath(path.replace(os.sep, "/"))
    return str(pure.with_suffix("")) if pure.suffix else str(pure)


def _decode(data: bytes) -> str | None:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None


def _utf8(value: str) -> bool:
    """False for text holding undecodable bytes (kept as lone surrogates by surrogateescape / file names)."""
    return not any("\udc80" <= ch <= "\udcff" for ch in value)


def _sidecar_entries(src: Path) -> list[tuple[str, str | None, bool] | None]:
    """(relative path, caption or None when missing, caption decodable) for every image under src, by path; None for
    an image whose file name is not UTF-8 (malformed)."""
    entries: list[tuple[str, str | None, bool] | None] = []
    for path in sorted(p for p in src.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
        rel = path.relative_to(src).as_posix()
        if not _utf8(rel):
            entries.append(None)
            continue
        text_file = path.with_suffix(".txt")
        if not text_file.is_file():
            entries.append((rel, None, True))
            continue
        caption = _decode(text_file.read_bytes())
        entries.append((rel, caption, caption is not None))
    return entries


def _column(names: list[str], given: str, defaults: tuple[str, ...], what: str, table: Path) -> str:
    if given:
        if given not in names:
            raise FolderDataError(f"{table}: no {what} column {given!r}; columns: {names}")
        return given
    for name in defaults:
        if name in names:
            return name
    raise FolderDataError(f"{table}: no {what} column (looked for {list(defaults)}); columns: {names}; "
                          f"name it with --{what}-col")


def _table_rows(table: Path, path_col: str, caption_col: str) -> list[tuple[str, str | None, bool] | None]:
    """(path, caption, caption decodable) per row of a CSV/TSV/JSONL table; None for a malformed row."""
    suffix = table.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise FolderDataError(f"{table}: caption table must end in one of {list(TABLE_SUFFIXES)}")
    raw = table.read_bytes()
    # Undecodable bytes survive as lone surrogates, so one bad caption is skipped instead of the whole table.
    text = raw.decode("utf-8-sig", errors="surrogateescape")
    rows: list[tuple[str, str | None, bool] | None] = []
    if suffix == ".jsonl":
        columns: list[str] | None = None
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError:
                rows.append(None)
                continue
            if not isinstance(item, dict):
                rows.append(None)
                continue
            if columns is None:
                columns = list(item)
                path_key = _column(columns, path_col, PATH_COLUMNS, "path", table)
                caption_key = _column(columns, caption_col, CAPTION_COLUMNS, "caption", table)
            path, caption = item.get(path_key), item.get(caption_key)
            if not isinstance(path, str) or not path.strip() or not _utf8(path) or (
                    caption is not None and not isinstance(caption, str)):
                rows.append(None)
                continue
            rows.append((path.strip(), caption, caption is None or _utf8(caption)))
        return rows
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t" if suffix == ".tsv" else ",")
    header = next(reader, None)
    if not header:
        raise FolderDataError(f"{table}: empty table; the first row must name the columns (path, caption)")
    path_i = header.index(_column(header, path_col, PATH_COLUMNS, "path", table))
    caption_i = header.index(_column(header, caption_col, CAPTION_COLUMNS, "caption", table))
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        if len(row) <= max(path_i, caption_i) or not row[path_i].strip() or not _utf8(row[path_i]):
            rows.append(None)
            continue
        rows.append((row[path_i].strip(), row[caption_i], _utf8(row[caption_i])))
    return rows


def list_folder_pairs(src: str | os.PathLike, captions: str | os.PathLike | None = None, *, path_col: str = "",
                      caption_col: str = "", min_caption_words: int = 1) -> tuple[list[tuple[str, str]], FolderReport]:
    """The usable (relative image path, normalised caption) pairs of a folder, in order, and the skip counts."""
    src = Path(src)
    if not src.is_dir():
        raise FolderDataError(f"{src}: no such folder")
    table = Path(captions) if captions else None
    if table is not None and not table.is_file():
        raise FolderDataError(f"--captions {table}: no such file")
    entries = _table_rows(table, path_col, caption_col) if table else _sidecar_entries(src)
    report, pairs, seen = FolderReport(), [], set()
    for entry in entries:
        report.read += 1
        if entry is None:
            report.dropped["malformed"] += 1
            continue
        path, caption, decodable = entry
        if not decodable:
            report.dropped["non_utf8_caption"] += 1
            continue
        if caption is None:
            report.dropped["missing_caption"] += 1
            continue
        caption = normalise_caption(caption)
        problem = caption_problem(caption, min_caption_words)
        if problem:
            report.dropped[problem] += 1
            continue
        if table is not None and not (src / path).is_file():
            report.dropped["missing_image"] += 1
            continue
        key = _key(path)
        if key in seen:
            report.dropped["duplicate_key"] += 1
            continue
        seen.add(key)
        report.kept += 1
        pairs.append((path, caption))
    return pairs, report


# ---- reading -------------------------------------------------------------------------------------------------------
def read_local(root: str, path: str, settings: FetchSettings) -> bytes:
    """A listed image's bytes (the shard writer's reader for folders); FetchError when the file cannot be read."""
    try:
        return (Path(root) / path).read_bytes()
    except OSError as err:
        raise FetchError("unreadable file", f"{type(err).__name__}: {err}") from None


# ---- end to end ----------------------------------------------------------------------------------------------------
def _listing_text(pairs: list[tuple[str, str]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter="\t", quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
    writer.writerow(["url", "caption"])
    writer.writerows(pairs)
    return buf.getvalue()


def _prepare(src: Path, out: Path, table: Path | None, pairs: list[tuple[str, str]], report: FolderReport,
             settings: FolderSettings) -> dict:
    listing = _listing_text(pairs)
    plan = {
        "source": str(src), "captions": str(table) if table else "side-car .txt files",
        "captions_sha256": sha256_file(table) if table else None,
        "listing_sha256": hashlib.sha256(listing.encode("utf-8")).hexdigest(),
        "min_caption_words": settings.min_caption_words, "samples_per_shard": settings.samples_per_shard,
        "image_size": settings.image_size, "resize_only_if_bigger": settings.resize_only_if_bigger,
        "encode_quality": settings.encode_quality, "backend": BACKEND,
        "filter": report.to_dict(), "pairs": report.kept, "shards": num_shards(report.kept, settings.samples_per_shard),
    }
    plan_path = out / PLAN_FILE
    if plan_path.is_file():
        old = json.loads(plan_path.read_text())
        differing = [k for k in PLAN_KEYS if old.get(k) != plan[k]]
        if differing:
            hint = " (images or captions were added, removed or edited)" if "listing_sha256" in differing else ""
            raise FolderDataError(f"{out} was made from another listing or settings ({', '.join(differing)} differ "
                                  f"from {PLAN_FILE}){hint}; delete the folder or choose another output folder")
    out.mkdir(parents=True, exist_ok=True)
    with atomic_open(out / PAIRS_FILE, "w") as handle:
        handle.write(listing)
    atomic_write_json(plan, plan_path)
    return plan


def shards_from_folder(src: str | os.PathLike, out_dir: str | os.PathLike, *,
                       captions: str | os.PathLike | None = None, path_col: str = "", caption_col: str = "",
                       settings: FolderSettings = FolderSettings()) -> FolderResult:
    """Turn (or finish turning) a folder of captioned images into shards at `out_dir`; see the module docstring."""
    src, out = Path(src), Path(out_dir)
    if out.resolve() == src.resolve() or src.resolve() in out.resolve().parents:
        raise FolderDataError(f"output folder {out} is inside the source folder {src}; choose one outside it")
    pairs, report = list_folder_pairs(src, captions, path_col=path_col, caption_col=caption_col,
                                      min_caption_words=settings.min_caption_words)
    log.info("%s: %s", src, report.summary())
    where = f"{src}" + (f" with captions from {captions}" if captions else " (side-car .txt captions)")
    if not pairs:
        raise FolderDataError(f"no usable image/caption pair in {where}: {report.summary()}")
    (out / DONE_FILE).unlink(missing_ok=True)
    plan = _prepare(src, out, Path(captions) if captions else None, pairs, report, settings)
    fetch = FetchSettings(
        image_size=settings.image_size, resize_only_if_bigger=settings.resize_only_if_bigger,
        encode_quality=settings.encode_quality, samples_per_shard=settings.samples_per_shard,
        workers=settings.workers, retries=0, timeout=0.0,
    )
    reader = functools.partial(read_local, str(src))
    done_now = run_builtin(out / PAIRS_FILE, out, plan["pairs"], fetch, processes=settings.processes, read=reader,
                           backend=BACKEND)
    total = plan["shards"]
    missing = [shard_name(i, total) for i in range(total) if not is_finished(out, shard_name(i, total))]
    if missing:
        raise FolderDataError(f"{out}: {len(missing)} of {total} shards unfinished ({missing[:5]}); rerun to resume")
    totals = write_summary(out)
    if totals["successes"] == 0:
        for i in range(total):
            shard_files(out, shard_name(i, total))["stats"].unlink(missing_ok=True)
        statuses = ", ".join(f"{k}: {v}" for k, v in totals["status_dict"].items())
        raise FolderDataError(f"no image in {where} could be read and decoded: {totals['count']} tried ({statuses})")
    atomic_write_json({"dataset": out.name, "source": str(src), "filter": report.to_dict(), **totals,
                       "plan": {k: plan[k] for k in (*PLAN_KEYS, "captions", "captions_sha256")}}, out / DONE_FILE)
    log.info("%s: %d of %d images in %d shards; summary in %s", out, totals["successes"], totals["count"], total,
             out / "summary.md")
    return FolderResult(out, report.to_dict(), totals, done_now)
