"""Prompt templates, nouns -> prompts, and the offline noun extractor."""
from __future__ import annotations

import random
import re

import pytest

from groupvit.data.nouns import extract_nouns_lexicon, get_noun_extractor
from groupvit.data.prompts import IMAGENET80_TEMPLATES, get_templates, make_prompts


def test_template_sets():
    assert len(IMAGENET80_TEMPLATES) == 80
    assert len(set(IMAGENET80_TEMPLATES)) == 80
    assert all(t.count("{}") == 1 for t in IMAGENET80_TEMPLATES)
    assert "a photo of a {}." in IMAGENET80_TEMPLATES and "itap of my {}." in IMAGENET80_TEMPLATES
    assert get_templates("simple") == ("a photo of a {}.",)
    assert get_templates("imagenet80") == IMAGENET80_TEMPLATES
    with pytest.raises(ValueError, match="unknown prompt template set"):
        get_templates("imagenet7")


def _noun_of(prompt: str, templates) -> str | None:
    """The noun a prompt was made from (the shortest fill of any template), or None when none produces it."""
    fills = []
    for template in templates:
        pattern = "^" + re.escape(template).replace(r"\{\}", "(.+)") + "$"
        match = re.match(pattern, prompt)
        if match:
            fills.append(match.group(1))
    return min(fills, key=len) if fills else None


def test_k_prompts_padded_with_caption():
    caption = "a dog on a beach"
    prompts = make_prompts(caption, ["dog"], 3, IMAGENET80_TEMPLATES, random.Random(0))
    assert len(prompts) == 3
    assert _noun_of(prompts[0], IMAGENET80_TEMPLATES) == "dog"
    assert prompts[1:] == [caption, caption]
    assert make_prompts(caption, [], 2, IMAGENET80_TEMPLATES, random.Random(0)) == [caption, caption]
    assert make_prompts(caption, ["dog"], 0, IMAGENET80_TEMPLATES, random.Random(0)) == []


def test_at_most_k_distinct_nouns_each_templated():
    nouns = ["dog", "beach", "sunset", "dog", "ball", "sky"]
    seen_templates, seen_nouns = set(), set()
    for seed in range(40):
        prompts = make_prompts("caption", nouns, 3, IMAGENET80_TEMPLATES, random.Random(seed))
        used = [_noun_of(p, IMAGENET80_TEMPLATES) for p in prompts]
        assert len(prompts) == 3 and None not in used and len(set(used)) == 3
        assert set(used) <= set(nouns)
        assert used == sorted(used, key=["dog", "beach", "sunset", "ball", "sky"].index)  # caption order
        seen_nouns.update(used)
        seen_templates.update(prompts)
    assert seen_nouns == {"dog", "beach", "sunset", "ball", "sky"}  # random choice, not always the first K
    assert len(seen_templates) > 60  # random templates


def test_prompts_are_reproducible_from_the_rng():
    args = ("a cat", ["cat", "mat"], 3, IMAGENET80_TEMPLATES)
    assert make_prompts(*args, random.Random(5)) == make_prompts(*args, random.Random(5))


@pytest.mark.parametrize(
    ("caption", "nouns"),
    [
        ("two stars above a striped hexagon on a dotted background", ["star", "hexagon", "background"]),
        ("a red circle left of two small squares", ["circle", "square"]),
        ("A dog sitting on the beach at sunset", ["dog", "beach", "sunset"]),
        ("the dog runs to the ball", ["dog", "ball"]),
        ("a cross and a crescent", ["cross", "crescent"]),
        ("a square table with three chairs", ["table", "chair"]),
        ("a man riding a horse in the mountains", ["man", "horse", "mountain"]),
        ("", []),
    ],
)
def test_lexicon_noun_extractor(caption, nouns):
    assert extract_nouns_lexicon(caption) == nouns


def test_noun_extractor_backends():
    assert get_noun_extractor("lexicon") is extract_nouns_lexicon
    with pytest.raises(ValueError, match="unknown noun extractor"):
        get_noun_extractor("spacy")
    try:
        import nltk

        nltk.pos_tag(["a", "test"])
    except Exception:  # NLTK or its tagger data missing (as on the CPU machines): a clear error, no fallback
        with pytest.raises(RuntimeError, match="use 'lexicon' offline"):
            get_noun_extractor("nltk")
