"""Atomic file writes (a temporary file beside the target, moved into place with os.replace only once complete) and
the streamed sha256 that data cards and metrics files record of what they describe.

Snakemake and DVC treat an existing output as finished, and a killed training run resumes from whatever
checkpoint exists, so no writer in this project may ever leave a half-written file under its final name.
Standard library only: the model library uses it too.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def temp_file_beside(path: Path) -> tuple[int, str]:
    """(fd, name) of a new temporary file in `path`'s folder, with the permissions a plain open() would give.

    Not tempfile.mkstemp: it creates files readable by their owner only (0600), which os.replace carries over to
    the result, so metrics, data cards and checkpoints on a shared file system would be unreadable to the rest of
    the group. Opening with mode 0666 lets the kernel apply the user's umask, without touching process state."""
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(tmp, flags, 0o666), str(tmp)
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", *, fsync: bool = False) -> Iterator[IO]:
    """Yield a handle on a temporary file beside `path`; on success it replaces `path`, on error it is removed."""
    path = Path(path)
    fd, tmp = temp_file_beside(path)
    text_kwargs = {} if "b" in mode else {"encoding": "utf-8", "newline": ""}
    try:
        with os.fdopen(fd, mode, **text_kwargs) as handle:
            yield handle
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_open(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_open(path, "w") as handle:
        handle.write(text)
    return Path(path)


def atomic_write_json(obj: Any, path: str | os.PathLike, **dump_kwargs: Any) -> Path:
    with atomic_open(path, "w") as handle:
        json.dump(obj, handle, indent=2, **dump_kwargs)
        handle.write("\n")
    return Path(path)


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, streamed (checkpoints and shards can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()
