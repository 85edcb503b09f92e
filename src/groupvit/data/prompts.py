"""Prompt templates and the nouns -> prompts step of the multi-label contrastive loss.

GroupViT's multi-label loss contrasts each image with K extra "prompt" texts built from nouns of its caption
(paper, Sec. 3.2): each chosen noun is put into a random one of the 80 CLIP ImageNet templates, and when a
caption has fewer than K nouns the prompt list is padded with the raw caption. This module holds the template
sets as data and the (seeded) construction of the K prompt strings; picking nouns out of a caption lives in
`groupvit.data.nouns`.
"""
from __future__ import annotations

import random
from collections.abc import Sequence

# The 80 prompt templates CLIP used for ImageNet zero-shot classification, in CLIP's order.
IMAGENET80_TEMPLATES: tuple[str, ...] = (
    "a bad photo of a {}.",
    "a photo of many {}.",
    "a sculpture of a {}.",
    "a photo of the hard to see {}.",
    "a low resolution photo of the {}.",
    "a rendering of a {}.",
    "graffiti of a {}.",
    "a bad photo of the {}.",
    "a cropped photo of the {}.",
    "a tattoo of a {}.",
    "the embroidered {}.",
    "a photo of a hard to see {}.",
    "a bright photo of a {}.",
    "a photo of a clean {}.",
    "a photo of a dirty {}.",
    "a dark photo of the {}.",
    "a drawing of a {}.",
    "a photo of my {}.",
    "the plastic {}.",
    "a photo of the cool {}.",
    "a close-up photo of a {}.",
    "a black and white photo of the {}.",
    "a painting of the {}.",
    "a painting of a {}.",
    "a pixelated photo of the {}.",
    "a sculpture of the {}.",
    "a bright photo of the {}.",
    "a cropped photo of a {}.",
    "a plastic {}.",
    "a photo of the dirty {}.",
    "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.",
    "a photo of the {}.",
    "a good photo of the {}.",
    "a rendering of the {}.",
    "a {} in a video game.",
    "a photo of one {}.",
    "a doodle of a {}.",
    "a close-up photo of the {}.",
    "a photo of a {}.",
    "the origami {}.",
    "the {} in a video game.",
    "a sketch of a {}.",
    "a doodle of the {}.",
    "a origami {}.",
    "a low resolution photo of a {}.",
    "the toy {}.",
    "a rendition of the {}.",
    "a photo of the clean {}.",
    "a photo of a large {}.",
    "a rendition of a {}.",
    "a photo of a nice {}.",
    "a photo of a weird {}.",
    "a blurry photo of a {}.",
    "a cartoon {}.",
    "art of a {}.",
    "a sketch of the {}.",
    "a embroidered {}.",
    "a pixelated photo of a {}.",
    "itap of the {}.",
    "a jpeg corrupted photo of the {}.",
    "a good photo of a {}.",
    "a plushie {}.",
    "a photo of the nice {}.",
    "a photo of the small {}.",
    "a photo of the weird {}.",
    "the cartoon {}.",
    "art of the {}.",
    "a drawing of the {}.",
    "a photo of the large {}.",
    "a black and white photo of a {}.",
    "the plushie {}.",
    "a dark photo of a {}.",
    "itap of a {}.",
    "graffiti of the {}.",
    "a toy {}.",
    "itap of my {}.",
    "a photo of a cool {}.",
    "a photo of a small {}.",
    "a tattoo of the {}.",
)

# The single template the zero-shot segmentation protocol uses; also a low-noise choice for tiny worlds.
SIMPLE_TEMPLATES: tuple[str, ...] = ("a photo of a {}.",)

TEMPLATE_SETS: dict[str, tuple[str, ...]] = {
    "imagenet80": IMAGENET80_TEMPLATES,
    "simple": SIMPLE_TEMPLATES,
}


def get_templates(name: str) -> tuple[str, ...]:
    """The template set named by `data.prompt_templates`; unknown names fail loudly rather than fall back."""
    try:
        return TEMPLATE_SETS[name]
    except KeyError:
        raise ValueError(f"unknown prompt template set {name!r}; choose one of {sorted(TEMPLATE_SETS)}") from None


def make_prompts(
    caption: str,
    nouns: Sequence[str],
    k: int,
    templates: Sequence[str],
    rng: random.Random,
) -> list[str]:
    """Exactly `k` prompt strings for one caption.

    Up to `k` distinct nouns are drawn without replacement (kept in caption order), each is formatted into a
    template drawn uniformly from `templates`, and the list is padded with the raw caption. All randomness comes
    from `rng` so the loader can replay a sample exactly.
    """
    if k <= 0:
        return []
    unique = list(dict.fromkeys(n.strip() for n in nouns if n and n.strip()))
    if len(unique) > k:
        keep = set(rng.sample(range(len(unique)), k))
        unique = [n for i, n in enumerate(unique) if i in keep]
    prompts = [templates[rng.randrange(len(templates))].format(noun) for noun in unique]
    prompts.extend([caption] * (k - len(prompts)))
    return prompts
