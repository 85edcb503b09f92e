"""Where training pairs come from and how they are turned into batches."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class AugmentConfig:
    """Train-time augmentation in the paper's spirit, scaled to the resolution."""

    crop_scale: list[float] = field(default_factory=lambda: [0.08, 1.0])  # RandomResizedCrop area range
    hflip: bool = True  # the caption's left/right words are swapped with the image
    randaugment: bool = True  # rand-m9-mstd0.5 in the paper
    random_erasing: float = 0.25
    mean: list[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])
    std: list[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])


@dataclass
class DataConfig:
    """The training data source. `synthetic` reads the world's shards; `webdataset` reads any shard set
    (img2dataset output for CC3M/CC12M/YFCC/RedCaps) named by `shards` (brace patterns allowed)."""

    source: str = "synthetic"  # synthetic | webdataset
    shards: list[str] = field(default_factory=list)  # for source=webdataset; brace-expandable patterns
    shuffle_buffer: int = 10000
    num_workers: int = 2
    min_caption_words: int = 0  # the official YFCC conversion drops captions under 2 words
    multi_label_nouns: int = 3  # K nouns per caption turned into prompts (0 disables the multi-label loss)
    prompt_templates: str = "imagenet80"  # imagenet80 | simple ("a photo of a {}.")
    # How nouns are found in captions whose json has no `nouns`: lexicon (lemminflect, offline, the default)
    # | nltk (the official code's tagger; needs NLTK's tagger data). See groupvit.data.nouns.
    noun_extractor: str = "lexicon"
    augment: AugmentConfig = field(default_factory=AugmentConfig)
