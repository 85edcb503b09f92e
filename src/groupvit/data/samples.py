"""Raw samples out of webdataset shards, and the checks that turn one into a usable (image, caption, nouns).

Shards follow img2dataset's convention (docs/architecture.md, "Data contract"): per key, an image under one of
the suffixes `jpg;png;jpeg`, the caption in `txt`, metadata in `json` (the synthetic world adds `nouns`).
Reading uses webdataset's tar iterators; everything after that is plain Python so that the loader decides
exactly which samples exist, in which order, and why one was dropped.

A sample that cannot be used raises `SampleError` with one of `DROP_REASONS`; the loader counts these. A shard
that stops mid-way (truncated tar) yields the samples before the damage and counts one `shard_error`.
"""
from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from PIL import Image
from webdataset.tariterators import group_by_keys, tar_file_iterator

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = ("jpg", "png", "jpeg")
DROP_REASONS = ("corrupt_image", "missing_image", "missing_caption", "bad_json", "short_caption")


class SampleError(Exception):
    """A sample that the loader skips; `reason` is one of DROP_REASONS."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass
class RawSample:
    """One key's files as bytes, before any decoding (cheap to hold in the shuffle buffer)."""

    key: str
    shard: str
    files: dict[str, bytes]


@dataclass
class DecodedSample:
    """A sample that passed every check: RGB image, caption, and the json's nouns when it had any."""

    key: str
    image: Image.Image
    caption: str
    nouns: list[str] | None
    meta: dict[str, Any] = field(default_factory=dict)


def _has_end_marker(stream: BinaryIO) -> bool:
    """Whether a tar file ends like a complete archive: a multiple of 512 bytes whose last two blocks are zero.
    Python's tarfile silently stops at a file cut at a header boundary; this catches that case."""
    size = stream.seek(0, os.SEEK_END)
    if size < 1024 or size % 512:
        stream.seek(0)
        return False
    stream.seek(size - 1024)
    tail = stream.read(1024)
    stream.seek(0)
    return not any(tail)


def iter_shard(path: str) -> Iterator[RawSample]:
    """The samples of one tar shard in file order. A damaged tar (truncated, bad member) raises `OSError`
    naming the shard after the samples that could be read; a missing file raises FileNotFoundError."""
    with open(path, "rb") as stream:
        complete = _has_end_marker(stream)
        try:
            files = ({**entry, "__url__": path} for entry in tar_file_iterator(stream))
            for sample in group_by_keys(files):
                content = {k: v for k, v in sample.items() if not k.startswith("__")}
                yield RawSample(key=sample["__key__"], shard=path, files=content)
        except Exception as exc:  # tarfile.ReadError (truncated), duplicate names, decoding of member names
            raise OSError(f"shard {path} is damaged: {exc}") from exc
        if not complete:
            raise OSError(f"shard {path} is damaged: it is truncated (no end-of-archive marker)")


def iter_shards(paths: Sequence[str], counts: dict[str, int]) -> Iterator[RawSample]:
    """The samples of several shards in order; a damaged shard is logged, counted (`shard_error`) and left."""
    for path in paths:
        try:
            yield from iter_shard(path)
        except FileNotFoundError:
            raise
        except OSError as exc:
            counts["shard_error"] = counts.get("shard_error", 0) + 1
            log.warning("%s; continuing with the next shard", exc)


def decode_sample(raw: RawSample, min_caption_words: int = 0) -> DecodedSample:
    """Check and decode one raw sample, or raise SampleError. The image is fully decoded here (not lazily) so
    a truncated file is caught now, the same way on the normal path and on the resume-skip path."""
    meta: dict[str, Any] = {}
    if "json" in raw.files:
        try:
            meta = json.loads(raw.files["json"].decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SampleError("bad_json", f"{raw.key} in {raw.shard}: {exc}") from None
        if not isinstance(meta, dict):
            raise SampleError("bad_json", f"{raw.key} in {raw.shard}: top level is {type(meta).__name__}")
    text = raw.files.get("txt")
    caption = text.decode("utf-8", errors="replace").strip() if text is not None else ""
    if not caption:
        raise SampleError("missing_caption", f"{raw.key} in {raw.shard}")
    if len(caption.split()) < min_caption_words:
        raise SampleError("short_caption", f"{raw.key} in {raw.shard}: {caption!r}")
    suffix = next((s for s in IMAGE_SUFFIXES if s in raw.files), None)
    if suffix is None:
        raise SampleError("missing_image", f"{raw.key} in {raw.shard}: files {sorted(raw.files)}")
    try:
        with Image.open(io.BytesIO(raw.files[suffix])) as img:
            image = img.convert("RGB")
            image.load()
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, zlib errors, DecompressionBombError
        raise SampleError("corrupt_image", f"{raw.key}.{suffix} in {raw.shard}: {exc}") from None
    nouns = meta.get("nouns")
    if not (isinstance(nouns, list) and all(isinstance(n, str) for n in nouns)):
        nouns = None
    return DecodedSample(key=raw.key, image=image, caption=caption, nouns=nouns, meta=meta)
