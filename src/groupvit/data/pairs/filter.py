"""The pre-download filter: drop pairs that cannot or should not become samples, and count why.

Why before the download: a URL fetched twice costs bandwidth and puts the same image twice in an epoch, and a
caption too short to train on (the official YFCC conversion drops captions under 2 words) is not worth fetching.
Why counted: "12% of CC12M never reached the downloader" must be visible in the data card, not silent.

Drop reasons (`FilterReport.dropped`): malformed (a list line without both columns), bad_url (not http/https),
empty_caption, short_caption (< min_caption_words words), duplicate_url (a URL seen earlier in the lists).
Captions are normalised: whitespace (tabs and newlines included) collapsed to single spaces.
"""
from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from groupvit.data.pairs.lists import Pair

DROP_REASONS = ("malformed", "bad_url", "empty_caption", "short_caption", "duplicate_url")


@dataclass
class FilterReport:
    """How many entries were read and kept, and why the others were dropped (every reason listed, 0 or not)."""

    read: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    REASONS = DROP_REASONS
    READ = "pairs read"

    def to_dict(self) -> dict:
        return {"read": self.read, "kept": self.kept, "dropped": {k: self.dropped.get(k, 0) for k in self.REASONS}}

    def summary(self) -> str:
        details = ", ".join(f"{k}={v}" for k, v in self.dropped.items() if v)
        return f"{self.read} {self.READ}, {self.kept} kept" + (f", dropped: {details}" if details else "")


def normalise_caption(caption: str) -> str:
    return " ".join(caption.split())


def caption_problem(caption: str, min_caption_words: int) -> str | None:
    """Why a normalised caption cannot be trained on (empty_caption, short_caption), or None."""
    if not caption:
        return "empty_caption"
    if len(caption.split()) < min_caption_words:
        return "short_caption"
    return None


def filter_pairs(
    pairs: Iterable[Pair], report: FilterReport, *, min_caption_words: int = 1, dedupe: bool = True
) -> Iterator[Pair]:
    """Yield the usable pairs in order (caption normalised), booking every drop in `report`."""
    seen: set[bytes] = set()  # 8-byte URL digests: CC12M's 12M URLs then fit in about 1 GB
    for url, caption in pairs:
        report.read += 1
        url, caption = url.strip(), normalise_caption(caption)
        if not url and not caption:
            report.dropped["malformed"] += 1
            continue
        if not url.lower().startswith(("http://", "https://")):
            report.dropped["bad_url"] += 1
            continue
        problem = caption_problem(caption, min_caption_words)
        if problem:
            report.dropped[problem] += 1
            continue
        if dedupe:
            digest = hashlib.blake2b(url.encode("utf-8", "surrogatepass"), digest_size=8).digest()
            if digest in seen:
                report.dropped["duplicate_url"] += 1
                continue
            seen.add(digest)
        report.kept += 1
        yield url, caption
