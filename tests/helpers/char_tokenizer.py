"""A trivial, invertible character tokenizer for tests and benchmarks of the data path.

Not a model tokenizer: it exists so the loader can be exercised (and its captions read back exactly) without
building a model. Picklable, so DataLoader workers can call it.
"""
from __future__ import annotations

import torch


class CharTokenizer:
    """Text -> LongTensor[N, context_length] of Unicode code points (capped at `vocab - 1`), 0-padded."""

    def __init__(self, context_length: int = 96, vocab: int = 0x110000) -> None:
        self.context_length = context_length
        self.vocab = vocab

    def __call__(self, texts: list[str]) -> torch.Tensor:
        out = torch.zeros(len(texts), self.context_length, dtype=torch.long)
        for row, text in enumerate(texts):
            codes = [min(ord(c), self.vocab - 1) for c in text[: self.context_length]]
            if codes:
                out[row, : len(codes)] = torch.tensor(codes, dtype=torch.long)
        return out

    def decode(self, tokens: torch.Tensor) -> list[str]:
        """The texts back (exact when they fit in context_length and use no code point >= vocab)."""
        rows = tokens.reshape(-1, tokens.shape[-1]).tolist()
        return ["".join(chr(c) for c in row if c != 0) for row in rows]
