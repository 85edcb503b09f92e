"""Readers for the URL/caption lists the paper's datasets come as; each yields (url, caption) pairs.

Why one reader per format: the public lists disagree on everything. Google's CC3M TSV is caption<TAB>url without a
header, CC12M's is url<TAB>caption, YFCC metadata is a table with URL-encoded title and description columns, and
RedCaps ships JSON annotation files (one per subreddit). Everything downstream (filter, downloaders) sees plain
(url, caption) pairs in list order, which is what makes shard contents a pure function of the list.

Formats (`FORMAT_SPECS`):
  cc3m      headerless TSV, columns (caption, url)
  cc12m     headerless TSV, columns (url, caption)
  yfcc      TSV or CSV with a header: a URL column (`url_col`, or the first of YFCC_URL_COLUMNS present) and
            `title` / `description`, URL-decoded, HTML stripped and joined; at least 2 caption words (the official
            YFCC conversion drops shorter captions)
  redcaps   JSON: {"annotations": [{"url": ..., "caption": ...}, ...]} or a plain list of such objects
  tsv, csv  a table with a header; columns `url_col` / `caption_col` (default url / caption)
Lists may be gzip or bz2 compressed (by suffix). A malformed line yields ("", "") so the filter can count it.
"""
from __future__ import annotations

import bz2
import csv
import glob
import gzip
import html
import json
import os
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import unquote_plus

Pair = tuple[str, str]  # (url, caption)

YFCC_URL_COLUMNS = ("url", "downloadurl", "download_url", "photo_url", "image_url")
_TAG = re.compile(r"<[^>]*>")


@dataclass(frozen=True)
class ListFormat:
    kind: str  # headerless | table | yfcc | json
    columns: tuple[str, ...] = ()  # headerless: the column order
    delimiter: str = "\t"  # table: the default delimiter (yfcc: by suffix)
    min_caption_words: int = 0  # a floor the format imposes on top of pairs.min_caption_words
    suffixes: tuple[str, ...] = (".tsv", ".txt")  # files taken from a folder


FORMAT_SPECS: dict[str, ListFormat] = {
    "cc3m": ListFormat("headerless", columns=("caption", "url")),
    "cc12m": ListFormat("headerless", columns=("url", "caption")),
    "yfcc": ListFormat("yfcc", min_caption_words=2, suffixes=(".tsv", ".csv", ".txt")),
    "redcaps": ListFormat("json", suffixes=(".json",)),
    "tsv": ListFormat("table", delimiter="\t"),
    "csv": ListFormat("table", delimiter=",", suffixes=(".csv",)),
}


def get_format(name: str) -> ListFormat:
    if name not in FORMAT_SPECS:
        raise ValueError(f"unknown list format {name!r}; known formats: {sorted(FORMAT_SPECS)}")
    return FORMAT_SPECS[name]


def _strip_compression(path: str) -> str:
    for suffix in (".gz", ".bz2"):
        if path.endswith(suffix):
            return path[: -len(suffix)]
    return path


def resolve_list_files(spec: str | Sequence[str], fmt: str) -> list[str]:
    """The list files named by a path, a folder (its files with the format's suffixes, sorted) or a glob, or by a
    sequence of those; FileNotFoundError names whatever matches nothing."""
    specs = [spec] if isinstance(spec, str) else list(spec)
    suffixes = get_format(fmt).suffixes
    files: list[str] = []
    for item in specs:
        if os.path.isdir(item):
            found = sorted(
                str(p) for p in Path(item).iterdir()
                if p.is_file() and Path(_strip_compression(p.name)).suffix in suffixes
            )
            if not found:
                raise FileNotFoundError(f"url list folder {item} holds no {'/'.join(suffixes)} files")
        elif glob.has_magic(item):
            found = sorted(glob.glob(item))
            if not found:
                raise FileNotFoundError(f"no url list matches {item}")
        elif os.path.isfile(item):
            found = [item]
        else:
            raise FileNotFoundError(f"url list not found: {item}")
        files.extend(found)
    if not files:
        raise FileNotFoundError(f"no url list given ({specs})")
    return list(dict.fromkeys(files))


def _open_text(path: str) -> IO[str]:
    opener = gzip.open if path.endswith(".gz") else bz2.open if path.endswith(".bz2") else open
    return opener(path, "rt", encoding="utf-8", errors="replace", newline="")


def _read_headerless(path: str, columns: tuple[str, ...]) -> Iterator[Pair]:
    url_at, caption_at = columns.index("url"), columns.index("caption")
    with _open_text(path) as handle:
        for line in handle:
            parts = line.rstrip("\r\n").split("\t")
            if len(parts) < len(columns):
                yield ("", "")
                continue
            yield (parts[url_at], parts[caption_at])


def _table_rows(path: str, delimiter: str) -> Iterator[dict[str, str]]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # YFCC descriptions can be long
    with _open_text(path) as handle:
        # TSV lists are not quoted (captions hold stray quotes); CSV lists are.
        quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
        yield from csv.DictReader(handle, delimiter=delimiter, quoting=quoting)


def _pick_column(header: Sequence[str], wanted: str, candidates: Sequence[str], path: str, role: str) -> str:
    lowered = {name.strip().lower(): name for name in header}
    for name in ([wanted] if wanted else candidates):
        if name.lower() in lowered:
            return lowered[name.lower()]
    raise ValueError(f"{path}: no {role} column {list([wanted] if wanted else candidates)} in header {list(header)}")


def _read_table(path: str, delimiter: str, url_col: str, caption_col: str) -> Iterator[Pair]:
    rows = _table_rows(path, delimiter)
    url_key = caption_key = None
    for row in rows:
        if url_key is None:
            url_key = _pick_column(list(row), url_col, ("url",), path, "url")
            caption_key = _pick_column(list(row), caption_col, ("caption",), path, "caption")
        yield ((row.get(url_key) or ""), (row.get(caption_key) or ""))


def clean_yfcc_text(text: str) -> str:
    """YFCC metadata text is URL-encoded ('+' for spaces) and may hold HTML: decode, unescape, strip tags."""
    text = unquote_plus(text or "")
    text = html.unescape(_TAG.sub(" ", text))
    return " ".join(text.split())


def _read_yfcc(path: str, url_col: str) -> Iterator[Pair]:
    delimiter = "," if _strip_compression(path).endswith(".csv") else "\t"
    url_key = None
    for row in _table_rows(path, delimiter):
        if url_key is None:
            url_key = _pick_column(list(row), url_col, YFCC_URL_COLUMNS, path, "url")
        title = clean_yfcc_text(row.get("title") or "")
        description = clean_yfcc_text(row.get("description") or "")
        parts = [t for t in (title, description) if t]
        if len(parts) == 2 and parts[0].lower() == parts[1].lower():
            parts = parts[:1]
        yield ((row.get(url_key) or ""), ". ".join(parts))


def _read_json(path: str) -> Iterator[Pair]:
    with _open_text(path) as handle:
        try:
            data = json.load(handle)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from None
    items = data.get("annotations") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise ValueError(f"{path}: expected {{'annotations': [...]}} or a list of {{url, caption}} objects")
    for item in items:
        if isinstance(item, dict):
            yield (str(item.get("url") or ""), str(item.get("caption") or ""))
        else:
            yield ("", "")


def read_pairs(
    files: Sequence[str], fmt: str, *, url_col: str = "", caption_col: str = ""
) -> Iterator[Pair]:
    """(url, caption) pairs of the list files in order; captions are raw (the filter normalises them)."""
    spec = get_format(fmt)
    for path in files:
        if spec.kind == "headerless":
            yield from _read_headerless(path, spec.columns)
        elif spec.kind == "table":
            yield from _read_table(path, spec.delimiter, url_col, caption_col)
        elif spec.kind == "yfcc":
            yield from _read_yfcc(path, url_col)
        else:
            yield from _read_json(path)
