"""The world's train split with its ground-truth masks, and the paired augmentation of the supervised reference.

The train shards hold images and captions only; the world is deterministic, so rendering the train records again
(groupvit.data.world.sample) gives exactly the shard images together with their class masks. Batches are a pure
function of (seed, step): sample order is a per-epoch permutation and each sample's crop and flip come from a seed
of its position in the stream, so a resumed run sees the same batches as an uninterrupted one.
"""
from __future__ import annotations

import io
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from PIL import Image
from tqdm import tqdm

from groupvit.data.config import AugmentConfig
from groupvit.data.transforms import seeded_cpu_rng
from groupvit.data.world.config import WorldConfig
from groupvit.data.world.sample import build_record, render_record, sample_key

CROP_RATIO = (3.0 / 4.0, 4.0 / 3.0)  # torchvision's RandomResizedCrop default, as the GroupViT training uses


@dataclass
class MaskedSplit:
    """images [N, S, S, 3] uint8 and class masks [N, S, S] uint8 (0 = background, i = classes[i - 1])."""

    images: np.ndarray
    masks: np.ndarray
    classes: list[str]

    def __len__(self) -> int:
        return len(self.images)


def render_train_split(world: WorldConfig, count: int | None = None, progress: bool = True) -> MaskedSplit:
    """The first `count` (default: all) train samples of `world`, rendered as the generator writes them."""
    n = world.num_train if count is None else min(count, world.num_train)
    size = world.image_size
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    masks = np.empty((n, size, size), dtype=np.uint8)
    previous = None
    for index in tqdm(range(n), desc="render train masks", unit="img", disable=not progress, dynamic_ncols=True,
                      mininterval=1.0 if sys.stderr.isatty() else 30.0):
        previous = build_record(world, "train", index, previous)  # a hard negative reuses its predecessor
        rendered, _ = render_record(world, previous)
        images[index], masks[index] = rendered.image, rendered.class_mask
    return MaskedSplit(images, masks, list(world.classes))


def check_against_shards(split: MaskedSplit, train_dir: str | Path, shard_size: int) -> int:
    """Compare the first image of every train shard with the rendered one; returns how many were compared.
    A difference means the shards come from another world config than the one given."""
    compared = 0
    for shard in sorted(Path(train_dir).glob("shard-*.tar")):
        index = int(shard.stem.removeprefix("shard-")) * shard_size
        if index >= len(split):
            continue
        with tarfile.open(shard) as tar:
            member = tar.extractfile(f"{sample_key(index)}.png")
            on_disk = np.asarray(Image.open(io.BytesIO(member.read())).convert("RGB"))
        if not np.array_equal(on_disk, split.images[index]):
            raise ValueError(f"{shard}: sample {sample_key(index)} differs from the world the config describes; "
                             "regenerate the world (`groupvit synth`) or train with the config that made it")
        compared += 1
    return compared


class PairedAugment:
    """Random resized crop (data.augment.crop_scale) and horizontal flip applied alike to image and mask (bicubic
    for the image, nearest for the mask), then the GroupViT training's normalisation."""

    def __init__(self, augment: AugmentConfig, image_size: int) -> None:
        self.size = image_size
        self.scale = (float(augment.crop_scale[0]), float(augment.crop_scale[1]))
        self.flip_prob = 0.5 if augment.hflip else 0.0
        self.mean = [float(m) for m in augment.mean]
        self.std = [float(s) for s in augment.std]

    def __call__(self, image: np.ndarray, mask: np.ndarray, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        pil = Image.fromarray(image, "RGB")
        target = torch.from_numpy(np.ascontiguousarray(mask))[None]
        with seeded_cpu_rng():
            torch.default_generator.manual_seed(seed)
            top, left, h, w = T.RandomResizedCrop.get_params(pil, self.scale, CROP_RATIO)
            flip = self.flip_prob > 0 and float(torch.rand(1)) < self.flip_prob
        pil = TF.resized_crop(pil, top, left, h, w, [self.size, self.size], T.InterpolationMode.BICUBIC,
                              antialias=True)
        target = TF.resized_crop(target, top, left, h, w, [self.size, self.size], T.InterpolationMode.NEAREST)
        if flip:
            pil, target = pil.transpose(Image.Transpose.FLIP_LEFT_RIGHT), target.flip(-1)
        x = TF.normalize(TF.pil_to_tensor(pil).float().div_(255.0), self.mean, self.std)
        return x, target[0].long()


class SupervisedBatches:
    """batch(step) -> (images [B, 3, S, S], masks [B, S, S] int64): samples step*B .. step*B + B - 1 of the stream."""

    def __init__(self, split: MaskedSplit, augment: PairedAugment, batch_size: int, seed: int) -> None:
        self.split, self.augment, self.batch_size, self.seed = split, augment, batch_size, seed
        self._epoch, self._order = -1, np.empty(0, dtype=np.int64)

    def _index(self, sample: int) -> int:
        epoch, position = divmod(sample, len(self.split))
        if epoch != self._epoch:
            self._epoch, self._order = epoch, np.random.default_rng([self.seed, epoch]).permutation(len(self.split))
        return int(self._order[position])

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        images, masks = [], []
        for sample in range(step * self.batch_size, (step + 1) * self.batch_size):
            index = self._index(sample)
            seed = int(np.random.SeedSequence([self.seed, sample]).generate_state(1)[0])
            x, y = self.augment(self.split.images[index], self.split.masks[index], seed)
            images.append(x)
            masks.append(y)
        return torch.stack(images), torch.stack(masks)
