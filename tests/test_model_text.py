"""Tokenizers and text towers: CLIP BPE ids equal open_clip's, truncation keeps EOT, empty captions, pickling, the
causal encoder's EOT trimming is exact and compiles as one graph, MiniLM mean pooling equals sentence-transformers,
frozen means frozen."""
from __future__ import annotations

import pickle

import pytest
import torch

from groupvit.model import ClipBpeTokenizer, TextEncoderConfig, WordPieceTokenizer
from groupvit.model.text_encoder import CausalTextTransformer, MiniLMTextEncoder

CAPTIONS = [
    "a photo of a cat.",
    "Two RED circles & a <b>blue</b> square, next to a star!!",
    "Héllo wörld 123 don't   stop",
    "",
]


def test_clip_bpe_matches_open_clip():
    open_clip = pytest.importorskip("open_clip")
    tok = ClipBpeTokenizer(77)
    long = "word " * 100
    ours = tok(CAPTIONS + [long])
    ref = open_clip.tokenize(CAPTIONS + [long])
    assert torch.equal(ours, ref)
    assert tok.vocab_size == 49408 and tok.eot_token_id == 49407 and tok.sot_token_id == 49406
    assert tok.decode(ours[0].tolist()) == "a photo of a cat ."


def test_truncation_keeps_eot_and_empty_caption():
    tok = ClipBpeTokenizer(8)
    ids = tok(["one two three four five six seven eight nine ten", ""])
    assert ids.shape == (2, 8)
    assert ids[0, -1] == tok.eot_token_id and ids[0, 0] == tok.sot_token_id
    assert ids[1, :2].tolist() == [tok.sot_token_id, tok.eot_token_id] and ids[1, 2:].eq(0).all()
    assert tok("single caption").shape == (1, 8)
    assert tok([]).shape == (0, 8)
    with pytest.raises(TypeError, match="item 1"):
        tok(["ok", 3])
    with pytest.raises(ValueError):
        ClipBpeTokenizer(1)


def test_tokenizers_pickle_small():
    tok = ClipBpeTokenizer(16)
    tok(["warm the cache"])
    blob = pickle.dumps(tok)
    assert len(blob) < 1000  # tables are rebuilt lazily in the worker, not shipped
    assert torch.equal(pickle.loads(blob)(CAPTIONS), tok(CAPTIONS))
    wp = WordPieceTokenizer(16)
    wp(["warm"])
    assert torch.equal(pickle.loads(pickle.dumps(wp))(CAPTIONS), wp(CAPTIONS))


def test_wordpiece_tokenizer():
    wp = WordPieceTokenizer(12)
    ids = wp(["a photo of a cat", "", "one two three four five six seven eight nine ten eleven twelve"])
    assert ids.shape == (3, 12) and ids.dtype == torch.long
    cls, sep, pad = 101, 102, wp.pad_token_id
    assert ids[1, :2].tolist() == [cls, sep] and ids[1, 2:].eq(pad).all()
    assert ids[2, -1] == sep  # truncated, [SEP] kept


def _full_length_reference(enc: CausalTextTransformer, tokens: torch.Tensor) -> torch.Tensor:
    """The same tower without the EOT trimming: all context positions through the blocks."""
    x = enc.token_embedding(tokens) + enc.positional_embedding[: tokens.shape[1]]
    for blk in enc.blocks:
        x = blk(x, is_causal=True)
    x = enc.norm(x)
    return x[torch.arange(len(tokens)), tokens.argmax(-1)]


def test_causal_encoder_trimming_is_exact_and_shapes():
    torch.manual_seed(0)
    enc = CausalTextTransformer(context_length=32, width=32, layers=2, heads=2).eval()
    tokens = ClipBpeTokenizer(32)(CAPTIONS)
    with torch.no_grad():
        ours = enc(tokens)
        torch.testing.assert_close(ours, _full_length_reference(enc, tokens), atol=1e-5, rtol=0)
        assert enc(tokens.view(2, 2, 32)).shape == (2, 2, 32)  # [..., L] -> [..., W]
        torch.testing.assert_close(enc(tokens[:1]), ours[:1], atol=1e-5, rtol=0)  # batch-independent
    with pytest.raises(ValueError, match="exceed the context length"):
        enc(torch.zeros(1, 33, dtype=torch.long))
    with pytest.raises(ValueError, match="integer token ids"):
        enc(torch.zeros(1, 8))


def test_causal_encoder_compiles_as_one_graph():
    """torch.compile (train.compile) traces the text tower without a graph break and computes the same pooling."""
    torch.manual_seed(0)
    enc = CausalTextTransformer(context_length=16, width=32, layers=1, heads=2).eval()
    tokens = ClipBpeTokenizer(16)(CAPTIONS)
    assert torch._dynamo.explain(enc)(tokens).graph_break_count == 0
    with torch.no_grad():
        torch.testing.assert_close(torch.compile(enc, backend="eager")(tokens), enc(tokens), atol=1e-5, rtol=0)

def test_minilm_matches_sentence_transformers_and_freezes():
    st = pytest.importorskip("sentence_transformers")
    from groupvit.model.tokenizer import minilm_path

    enc = MiniLMTextEncoder(freeze=True)
    enc.train()
    assert not enc.model.training and not any(p.requires_grad for p in enc.parameters())
    tok = WordPieceTokenizer(64)
    texts = CAPTIONS[:3]
    with torch.no_grad():
        ours = torch.nn.functional.normalize(enc(tok(texts)), dim=-1)
    ref = st.SentenceTransformer(str(minilm_path()), device="cpu").encode(texts, convert_to_tensor=True)
    torch.testing.assert_close(ours, ref.cpu(), atol=1e-4, rtol=0)
    tuned = MiniLMTextEncoder(freeze=False).train()
    assert tuned.model.training and all(p.requires_grad for p in tuned.parameters())


def test_frozen_minilm_encodes_each_text_once_with_the_same_bits_in_any_batch():
    pytest.importorskip("sentence_transformers")
    enc = MiniLMTextEncoder(freeze=True)
    calls = []
    hook = enc.model.register_forward_pre_hook(lambda _, args: calls.append(tuple(args[0]["input_ids"].shape)))
    tok = WordPieceTokenizer(32)
    texts = [CAPTIONS[0], CAPTIONS[1], CAPTIONS[0], CAPTIONS[2]]
    lengths = (tok(texts) != enc.pad_token_id).sum(dim=-1).tolist()
    with torch.no_grad():
        batch = enc(tok(texts))
        assert sum(rows for rows, _ in calls) == 3  # the repeated caption is encoded once
        assert sorted(n for rows, n in calls for _ in range(rows)) == sorted(lengths[i] for i in (0, 1, 3))  # unpadded
        again = enc(tok([CAPTIONS[2], CAPTIONS[0]]).unsqueeze(0))
        assert sum(shape[0] for shape in calls) == 3 and again.shape == (1, 2, enc.width)
        assert torch.equal(again[0], batch[[3, 0]])
        fresh = MiniLMTextEncoder(freeze=True)
        for i, text in enumerate(texts):  # alone, as in a batch: the same bits
            assert torch.equal(fresh(tok([text]))[0], batch[i])
        hook.remove()
        assert enc.double()(tok(texts[:1])).dtype == torch.float64  # moved: no stale float32 features


def test_minilm_model_end_to_end():
    from groupvit.model import ImageEncoderConfig, ModelConfig, build_model

    cfg = ModelConfig(
        image=ImageEncoderConfig(image_size=16, patch_size=8, embed_dim=16, depths=[1, 1], num_heads=2,
                                 num_group_tokens=[2, 0], num_output_groups=[2]),
        text=TextEncoderConfig(kind="minilm", context_length=16), proj_hidden=32, proj_dim=8,
    )
    model = build_model(cfg).eval()
    tokens = model.tokenizer(["a cat", "a dog"])
    assert tokens.shape == (2, 16)
    with torch.no_grad():
        assert model.encode_text(tokens).shape == (2, 8)
