"""One URL -> its bytes, with a timeout, retries with exponential backoff, and the site's opt-out honoured.

Why these rules: years-old lists are full of dead links, so a failure is normal and must be cheap and classified
(`FetchError.status` is a short category the stats count; `detail` goes to the per-sample table). Only failures
that may pass (network errors, timeouts, HTTP 408/429/5xx) are retried; a 404 or 403 will not heal. Like
img2dataset, a response whose X-Robots-Tag header says noai/noimageai/noindex/noimageindex is not kept.
Standard library only (urllib), so it runs in the main environment.
"""
from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request

USER_AGENT = "Mozilla/5.0 (compatible; groupvit-repro-pairs/0.1; research dataset download)"
OPT_OUT_DIRECTIVES = ("noai", "noimageai", "noindex", "noimageindex")
MAX_BYTES = 64 << 20  # a larger "image" is not an image worth keeping
RETRY_HTTP = {408, 429, 500, 502, 503, 504}
MAX_BACKOFF_S = 30.0


class FetchError(Exception):
    """A URL that gave no image bytes; `status` is the counted category, `detail` the full message."""

    def __init__(self, status: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _opted_out(header: str | None) -> bool:
    if not header:
        return False
    directives = {part.strip().lower() for chunk in header.split(",") for part in chunk.split(":")}
    return any(d in directives for d in OPT_OUT_DIRECTIVES)


def _fetch_once(url: str, timeout: float) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        if _opted_out(response.headers.get("X-Robots-Tag")):
            raise FetchError("opted out (X-Robots-Tag)", f"X-Robots-Tag: {response.headers.get('X-Robots-Tag')}")
        data = response.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise FetchError("too large", f"more than {MAX_BYTES} bytes")
    if not data:
        raise FetchError("empty response", "0 bytes")
    return data


def _classify(exc: BaseException) -> tuple[FetchError, bool]:
    """(the error to report, whether another attempt may succeed)."""
    if isinstance(exc, FetchError):
        return exc, False
    if isinstance(exc, urllib.error.HTTPError):
        return FetchError(f"HTTP Error {exc.code}", f"HTTP Error {exc.code}: {exc.reason}"), exc.code in RETRY_HTTP
    if isinstance(exc, (TimeoutError, socket.timeout)) or "timed out" in str(exc):
        return FetchError("timeout", f"timed out: {exc}"), True
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        return FetchError(f"URLError {type(reason).__name__}", f"URLError: {reason}"), True
    if isinstance(exc, (ConnectionError, OSError)):
        return FetchError(type(exc).__name__, f"{type(exc).__name__}: {exc}"), True
    return FetchError(type(exc).__name__, f"{type(exc).__name__}: {exc}"), False


def fetch(url: str, *, timeout: float, retries: int, backoff: float = 1.0) -> bytes:
    """The body of `url`; FetchError after 1 + `retries` attempts (waiting backoff x 2^attempt between them)."""
    attempt = 0
    while True:
        try:
            return _fetch_once(url, timeout)
        except Exception as exc:  # noqa: BLE001 - every failure is classified, counted and reported
            error, transient = _classify(exc)
            if not transient or attempt >= retries:
                raise error from None
        time.sleep(min(MAX_BACKOFF_S, backoff * 2**attempt))
        attempt += 1
