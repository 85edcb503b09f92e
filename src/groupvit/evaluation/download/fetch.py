"""Resumable, checksum-verified HTTP(S) downloads (standard library only).

fetch(url, dest, sha256=...) downloads into `<dest>.part`, resuming an interrupted transfer with an HTTP Range
request, retries transient failures with exponential backoff, verifies the whole file (sha256, and md5 / size where
pinned) and only then renames it to `dest` and writes `<dest>.sha256` (sha256sum format). A file whose `.sha256`
record matches the pinned digest is not downloaded again.

Never destroyed: a `dest` that already exists without a matching record (the user's own copy) is verified, and
on a mismatch left exactly as it was; the error names the URL, the expected and actual digests and the fix. The only
file this module deletes is its own `.part` after it failed verification (resuming from it could never succeed).
"""
from __future__ import annotations

import hashlib
import logging
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from groupvit.atomic import atomic_write_text

log = logging.getLogger(__name__)

CHUNK = 1 << 20
USER_AGENT = "groupvit-reproduction/1 (+urllib)"


class DownloadError(RuntimeError):
    """A download that failed after all retries, or an HTTP answer that cannot be used."""


class ChecksumMismatchError(DownloadError):
    """The bytes do not have the pinned digest; nothing is left under the final name."""


@dataclass(frozen=True)
class Digests:
    sha256: str
    md5: str
    size: int


def file_digests(path: str | os.PathLike) -> Digests:
    """sha256 and md5 of a file in one streamed pass."""
    sha, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK):
            sha.update(block)
            md5.update(block)
            size += len(block)
    return Digests(sha.hexdigest(), md5.hexdigest(), size)


def sidecar(dest: Path) -> Path:
    return dest.with_name(dest.name + ".sha256")


def part_file(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def read_sidecar(dest: Path) -> str | None:
    """The sha256 recorded for dest (first field of `<dest>.sha256`), or None."""
    path = sidecar(dest)
    if not path.is_file():
        return None
    fields = path.read_text().split()
    return fields[0].lower() if fields else None


def _mismatch(url: str, path: Path, what: str, expected: str, actual: str, fix: str) -> ChecksumMismatchError:
    return ChecksumMismatchError(
        f"{url}: {what} mismatch for {path}\n  expected {expected}\n  actual   {actual}\n{fix}"
    )


def _verify(url: str, path: Path, got: Digests, sha256: str | None, md5: str | None, size: int | None,
            fix: str) -> None:
    if size is not None and got.size != size:
        raise _mismatch(url, path, "size", f"{size} bytes", f"{got.size} bytes", fix)
    if sha256 is not None and got.sha256 != sha256.lower():
        raise _mismatch(url, path, "sha256", sha256.lower(), got.sha256, fix)
    if md5 is not None and got.md5 != md5.lower():
        raise _mismatch(url, path, "md5", md5.lower(), got.md5, fix)


def _content_range_start(value: str | None) -> int | None:
    """Start offset of a `Content-Range: bytes START-END/TOTAL` header."""
    if not value or not value.startswith("bytes "):
        return None
    try:
        return int(value[6:].split("-", 1)[0])
    except ValueError:
        return None


def _transfer(url: str, part: Path, timeout: float, progress: bool) -> None:
    """One HTTP request: append to `part` from its current size (Range) or rewrite it from zero.
    Raises on any short or failed transfer, leaving what arrived in `part` for the next attempt."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # nothing left to send: the part file is already complete (or too long)
            log.info("%s: server has no bytes after %d; verifying what was downloaded", url, have)
            return
        raise
    with response:
        status = getattr(response, "status", 200)
        if have and status == 206 and _content_range_start(response.headers.get("Content-Range")) == have:
            mode = "ab"
            length = response.headers.get("Content-Length")
            remaining = int(length) if length is not None else None
            log.info("%s: resuming at byte %d", url, have)
        else:
            if have:
                log.info("%s: server ignored the Range request (HTTP %s); starting again from byte 0", url, status)
            mode, have = "wb", 0
            length = response.headers.get("Content-Length")
            remaining = int(length) if length is not None else None
        written, last_report = 0, time.monotonic()
        with open(part, mode) as handle:
            while block := response.read(CHUNK):
                handle.write(block)
                written += len(block)
                if progress and time.monotonic() - last_report > 10:
                    last_report = time.monotonic()
                    total = f" of {have + remaining}" if remaining is not None else ""
                    log.info("%s: %d bytes%s", url, have + written, total)
        if remaining is not None and written < remaining:
            raise DownloadError(f"{url}: connection closed after {have + written} bytes, expected {have + remaining}")


def fetch(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    size: int | None = None,
    allow_unpinned: bool = False,
    retries: int = 5,
    backoff: float = 2.0,
    timeout: float = 60.0,
    progress: bool = True,
) -> Path:
    """Download url to dest (resumable, verified) and return dest.

    sha256 / md5 / size: the pinned values (any subset). With none pinned the download is refused unless
    allow_unpinned, in which case the sha256 it got is recorded (trust on first use) and logged so it can be pinned.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    pinned = sha256 is not None or md5 is not None
    if not pinned and not allow_unpinned:
        raise DownloadError(
            f"{url}: no checksum is pinned for {dest.name}, so its integrity cannot be verified.\n"
            f"Pin one (e.g. --set eval_data.sha256.<file id>=<hex>) or accept it unverified with --allow-unpinned "
            f"(the sha256 it gets is recorded in {sidecar(dest).name} and printed, so you can pin it)."
        )
    recorded = read_sidecar(dest)
    # The record is written only after the file passed verification against the pins of that time.
    if dest.is_file() and recorded is not None and (sha256 is None or recorded == sha256.lower()):
        log.info("%s: already downloaded and verified (%s)", dest, sidecar(dest).name)
        return dest
    if dest.is_file():
        # A file under the final name that we cannot vouch for by its record: verify it, never replace it.
        got = file_digests(dest)
        fix = (f"{dest} was already there and has been left untouched. If it is a stale or partial copy, move it "
               f"away and rerun to download {url} again.")
        _verify(url, dest, got, sha256, md5, size, fix)
        atomic_write_text(sidecar(dest), f"{got.sha256}  {dest.name}\n")
        log.info("%s: existing file verified", dest)
        return dest

    part = part_file(dest)
    attempt = 0
    while True:
        try:
            _transfer(url, part, timeout, progress)
            break
        except (urllib.error.URLError, OSError, DownloadError, ConnectionError) as err:
            if isinstance(err, urllib.error.HTTPError) and err.code in (401, 403, 404, 410):
                raise DownloadError(f"{url}: HTTP {err.code} {err.reason}; the file is not available at this URL "
                                    f"(set a mirror with --set eval_data.urls.<file id>=URL)") from err
            attempt += 1
            if attempt > retries:
                raise DownloadError(f"{url}: download failed after {retries} retries: {err}. "
                                    f"Rerun to resume from the {part.stat().st_size if part.exists() else 0} "
                                    f"bytes kept in {part}.") from err
            delay = backoff * 2 ** (attempt - 1)
            log.warning("%s: %s; retry %d/%d in %.1f s", url, err, attempt, retries, delay)
            time.sleep(delay)

    got = file_digests(part)
    try:
        _verify(url, part, got, sha256, md5, size,
                f"The partial file {part} was deleted (it can never verify). Rerun to download again; if it fails "
                f"again, the server sends other bytes than the pinned ones: check the URL or use another mirror.")
    except ChecksumMismatchError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, dest)
    atomic_write_text(sidecar(dest), f"{got.sha256}  {dest.name}\n")
    if not pinned:
        log.warning("%s: downloaded WITHOUT a pinned checksum; its sha256 is %s (pin it to verify future downloads)",
                    url, got.sha256)
    return dest


__all__ = ["ChecksumMismatchError", "Digests", "DownloadError", "fetch", "file_digests", "part_file",
           "read_sidecar", "sidecar"]
