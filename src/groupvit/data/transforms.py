"""Train-time image augmentation in the paper's spirit, scaled to the resolution, with a flip-aware caption.

The paper trains with RandomResizedCrop(224, scale 0.08-1), horizontal flip, RandAugment (rand-m9-mstd0.5),
ImageNet normalisation and RandomErasing(0.25). Here the crop goes to `image_size` with `augment.crop_scale`,
RandAugment is torchvision's (2 ops, magnitude 9: no magnitude noise, unlike timm's mstd0.5), and RandomErasing
fills with per-pixel normal noise (timm's "pixel" mode, which the official code uses).

The synthetic captions contain spatial relations ("a star left of a ring"), so a flipped image gets a caption
with left/right swapped; otherwise flipping would teach the text encoder wrong relations.

Every random draw comes from the global torch CPU generator, re-seeded per sample by `seeded_cpu_rng`, which
saves and restores the caller's state: the loader can replay any sample exactly (resume) and the trainer's own
random stream is left untouched.
"""
from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from PIL import Image

from groupvit.data.config import AugmentConfig

_LEFT_RIGHT = re.compile(r"\b(left|right)(most|ward|wards)?\b", re.IGNORECASE)


def _swap_word(match: re.Match[str]) -> str:
    word, suffix = match.group(1), match.group(2) or ""
    swapped = "right" if word.lower() == "left" else "left"
    if word.isupper():
        swapped = swapped.upper()
    elif word[0].isupper():
        swapped = swapped.capitalize()
    return swapped + suffix


def swap_left_right(caption: str) -> str:
    """The caption of the mirrored image: 'left' <-> 'right' as whole words (also -most, -ward), case kept."""
    return _LEFT_RIGHT.sub(_swap_word, caption)


@contextlib.contextmanager
def seeded_cpu_rng() -> Iterator[None]:
    """Run a block with the global torch CPU generator free to re-seed, restoring the caller's state after.

    Only the CPU generator is touched (not CUDA's, unlike `torch.manual_seed`), so a trainer that shares the
    process with a num_workers=0 loader keeps its random stream.
    """
    state = torch.default_generator.get_state()
    try:
        yield
    finally:
        torch.default_generator.set_state(state)


class TrainTransform:
    """PIL image + caption -> normalised float tensor [3, S, S] + caption (left/right swapped when flipped).

    Call inside `seeded_cpu_rng()` with a per-sample seed; the same seed gives the same tensor bit for bit.
    """

    def __init__(self, augment: AugmentConfig, image_size: int, flip_prob: float = 0.5) -> None:
        self.image_size = image_size
        self.flip_prob = flip_prob if augment.hflip else 0.0
        self.crop = T.RandomResizedCrop(
            image_size,
            scale=(float(augment.crop_scale[0]), float(augment.crop_scale[1])),
            interpolation=T.InterpolationMode.BICUBIC,
            antialias=True,
        )
        self.randaugment = T.RandAugment(num_ops=2, magnitude=9) if augment.randaugment else None
        self.mean = [float(m) for m in augment.mean]
        self.std = [float(s) for s in augment.std]
        self.erasing = T.RandomErasing(p=augment.random_erasing, value="random") if augment.random_erasing > 0 else None

    def __call__(self, image: Image.Image, caption: str, seed: int) -> tuple[torch.Tensor, str]:
        torch.default_generator.manual_seed(seed)
        image = self.crop(image)
        if self.flip_prob > 0 and float(torch.rand(1)) < self.flip_prob:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            caption = swap_left_right(caption)
        if self.randaugment is not None:
            image = self.randaugment(image)
        tensor = TF.pil_to_tensor(image).float().div_(255.0)
        tensor = TF.normalize(tensor, self.mean, self.std)
        if self.erasing is not None:
            tensor = self.erasing(tensor)
        return tensor.contiguous(), caption
