"""The built-in downloader: the filtered pairs file -> shards in img2dataset's layout (see .layout).

Why a downloader of our own beside img2dataset: img2dataset cannot live in the main environment (it pins
webdataset<0.3 and pandas<3), and tests, CI and small lists need a path with no second environment.

How it works: the pairs file is cut into consecutive shards of `samples_per_shard` pairs; a shard's URLs are
fetched by a thread pool (`workers`), each image verified, resized and re-encoded, and the shard is written in
this order: the tar (to a temporary name, renamed when complete), the sample table, then the stats file.
The stats file marks a finished shard, so a rerun skips finished shards and redoes an interrupted one from
scratch; finished shards are never rewritten. Several shards run at once with `processes` > 1.
Tar members carry fixed metadata (mtime 0, no owner), so the same images give the same bytes.
"""
from __future__ import annotations

import csv
import hashlib
import importlib.util
import io
import itertools
import json
import logging
import os
import tarfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path

from groupvit.atomic import atomic_open, atomic_write_json
from groupvit.data.pairs.fetch import FetchError, fetch
from groupvit.data.pairs.images import ImageProcessError, process_image
from groupvit.data.pairs.layout import is_finished, num_shards, sample_key, shard_files, shard_name
from groupvit.data.pairs.lists import Pair

log = logging.getLogger(__name__)

TABLE_COLUMNS = ("key", "url", "caption", "status", "error_message", "width", "height", "original_width",
                 "original_height", "sha256")


# How a sample's bytes are read from its `url` column: fetch_url (HTTP) or, for local folders, a picklable callable
# (groupvit.data.pairs.folder) that raises FetchError for a file it cannot read.
Reader = Callable[[str, "FetchSettings"], bytes]


@dataclass(frozen=True)
class FetchSettings:
    """What one shard job needs to know (picklable, for the process pool)."""

    image_size: int
    resize_only_if_bigger: bool
    encode_quality: int
    samples_per_shard: int
    workers: int
    retries: int
    timeout: float
    backoff: float = 1.0


def parquet_available() -> bool:
    """pandas writes parquet only with pyarrow or fastparquet; without them the sample table is a CSV."""
    return importlib.util.find_spec("pyarrow") is not None or importlib.util.find_spec("fastparquet") is not None


def read_pairs_file(path: str | os.PathLike) -> Iterator[Pair]:
    """The filtered pairs file (url<TAB>caption with a header; captions hold no tabs or newlines)."""
    with open(path, encoding="utf-8", newline="") as handle:
        next(handle, None)
        for line in handle:
            url, _, caption = line.rstrip("\n").partition("\t")
            yield url, caption


def fetch_url(url: str, settings: FetchSettings) -> bytes:
    """The default reader of a sample's bytes: an HTTP(S) download (FetchError on failure)."""
    return fetch(url, timeout=settings.timeout, retries=settings.retries, backoff=settings.backoff)


def _fetch_one(url: str, caption: str, key: str, settings: FetchSettings, read: Reader = fetch_url,
               ) -> tuple[dict, bytes | None]:
    """(the sample-table row, the JPEG bytes or None)."""
    row = dict.fromkeys(TABLE_COLUMNS)
    row.update(key=key, url=url, caption=caption)
    try:
        data = read(url, settings)
    except FetchError as err:
        row.update(status="failed_to_download", error_message=err.detail, _reason=err.status)
        return row, None
    try:
        image = process_image(data, image_size=settings.image_size, only_if_bigger=settings.resize_only_if_bigger,
                              quality=settings.encode_quality)
    except ImageProcessError as err:
        row.update(status="failed_to_resize", error_message=str(err), _reason="image decoding error")
        return row, None
    row.update(status="success", width=image.width, height=image.height, original_width=image.original_width,
               original_height=image.original_height, sha256=hashlib.sha256(data).hexdigest(), _reason="success")
    return row, image.data


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def _write_table(files: dict[str, Path], rows: list[dict]) -> None:
    clean = [{k: r[k] for k in TABLE_COLUMNS} for r in rows]
    if parquet_available():
        import pandas as pd

        with atomic_open(files["parquet"], "wb") as handle:
            pd.DataFrame(clean, columns=list(TABLE_COLUMNS)).to_parquet(handle, index=False)
        return
    with atomic_open(files["csv"], "w") as handle:
        writer = csv.DictWriter(handle, fieldnames=TABLE_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(clean)


def _remove_leftovers(out_dir: Path, name: str) -> None:
    """Temporary files of an interrupted attempt at this shard (atomic_open names them .NAME.*.tmp)."""
    for path in out_dir.glob(f".{name}*.tmp"):
        path.unlink(missing_ok=True)


def download_shard(shard_id: int, total: int, pairs: list[Pair], out_dir: str, settings: FetchSettings,
                   read: Reader = fetch_url, backend: str = "builtin") -> dict:
    """Fetch one shard's pairs (with `read`) and write its table, tar and (last) stats; return the stats."""
    out, name = Path(out_dir), shard_name(shard_id, total)
    files = shard_files(out, name)
    _remove_leftovers(out, name)
    files["stats"].unlink(missing_ok=True)
    start = time.time()
    keys = [sample_key(shard_id, i, settings.samples_per_shard, total) for i in range(len(pairs))]
    rows: list[dict] = []
    written = 0
    # Results are written in list order as they arrive, so a shard's images are never all in memory at once.
    # On an interruption the queued fetches are cancelled instead of run to the end.
    pool = ThreadPoolExecutor(max_workers=max(1, min(settings.workers, len(pairs))))
    try:
        with atomic_open(files["tar"], "wb") as handle, \
                tarfile.open(fileobj=handle, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            jobs = [(url, caption, key) for (url, caption), key in zip(pairs, keys)]
            for row, jpeg in pool.map(lambda job: _fetch_one(*job, settings, read), jobs):
                rows.append(row)
                if jpeg is None:
                    continue
                meta = {k: row[k] for k in TABLE_COLUMNS}
                _add_member(tar, f"{row['key']}.jpg", jpeg)
                _add_member(tar, f"{row['key']}.txt", row["caption"].encode("utf-8"))
                _add_member(tar, f"{row['key']}.json", json.dumps(meta, ensure_ascii=False).encode("utf-8"))
                written += len(jpeg)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    _write_table(files, rows)
    status = Counter(row["_reason"] for row in rows)
    stats = {
        "count": len(rows),
        "successes": status.get("success", 0),
        "failed_to_download": sum(1 for r in rows if r["status"] == "failed_to_download"),
        "failed_to_resize": sum(1 for r in rows if r["status"] == "failed_to_resize"),
        "duration": round(time.time() - start, 3),
        "start_time": start,
        "end_time": time.time(),
        "status_dict": dict(status.most_common()),
        "bytes": written,
        "backend": backend,
        "settings": asdict(settings),
    }
    atomic_write_json(stats, files["stats"])
    return stats


def _log_shard(name: str, stats: dict) -> None:
    rate = stats["successes"] / stats["count"] if stats["count"] else 0.0
    log.info("shard %s: %d/%d downloaded (%.1f%%) in %.1f s", name, stats["successes"], stats["count"], 100 * rate,
             stats["duration"])


def run_builtin(pairs_file: str | os.PathLike, out_dir: str | os.PathLike, num_pairs: int, settings: FetchSettings,
                processes: int = 1, read: Reader = fetch_url, backend: str = "builtin") -> list[str]:
    """Download (read with `read`) every unfinished shard of the pairs file; return the names of the shards done in
    this call. `backend` is what the stats files record."""
    out = Path(out_dir)
    total = num_shards(num_pairs, settings.samples_per_shard)
    pairs = read_pairs_file(pairs_file)
    chunks = ((i, list(itertools.islice(pairs, settings.samples_per_shard))) for i in range(total))
    pending = ((i, chunk) for i, chunk in chunks if not is_finished(out, shard_name(i, total)))
    done: list[str] = []
    skipped = sum(is_finished(out, shard_name(i, total)) for i in range(total))
    if skipped:
        log.info("%d of %d shards already finished in %s; skipping them", skipped, total, out)
    if processes <= 1:
        for i, chunk in pending:
            stats = download_shard(i, total, chunk, str(out), settings, read, backend)
            _log_shard(shard_name(i, total), stats)
            done.append(shard_name(i, total))
        return done
    with ProcessPoolExecutor(max_workers=processes) as pool:
        running: dict[Future, int] = {}
        for i, chunk in pending:
            running[pool.submit(download_shard, i, total, chunk, str(out), settings, read, backend)] = i
            if len(running) >= 2 * processes:  # bounded: never hold the whole list in flight
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    index = running.pop(future)
                    _log_shard(shard_name(index, total), future.result())
                    done.append(shard_name(index, total))
        for future in list(running):
            index = running.pop(future)
            _log_shard(shard_name(index, total), future.result())
            done.append(shard_name(index, total))
    return done
