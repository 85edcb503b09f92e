"""The training shard reader: webdataset shards -> augmented, tokenized, exactly resumable batches.

Public API
----------
`list_shards(patterns) -> list[str]`
    Expands brace patterns ("shard-{000000..000009}.tar"), globs, and folders (every *.tar inside, sorted);
    every named file must exist (FileNotFoundError names it). Local files only.

`build_train_loader(data, shards, *, image_size, batch_size, tokenize, seed, epoch_samples, start_step=0,
rank=0, world_size=1, num_workers=None, pin_memory=False, prefetch_factor=2) -> TrainLoader`
    An infinite iterable of batch dicts for one DDP rank:
      image    float [B, 3, image_size, image_size], normalised with augment.mean/std
      text     long  [B, L]      tokenize(captions); captions are left/right-swapped when the image was flipped
      prompts  long  [B, K, L]   K = data.multi_label_nouns prompts per caption (absent when K == 0)
      key      list[str]         the samples' webdataset keys
      caption  list[str]         the (possibly flipped) captions, for logs and reports
    `tokenize(list[str]) -> Tensor[N, L]` is the model's tokenizer; it runs in the worker processes, so it must
    be picklable. It is called once per batch on the B captions followed by the B*K prompts.

`TrainLoader`
    `steps_per_epoch` = epoch_samples // (batch_size * world_size): step t of a rank is in epoch t // that.
    `counters()` sums the per-reader skip counters as of the batches consumed so far: samples, corrupt_image,
    missing_image, missing_caption, bad_json, short_caption, shard_error, extra_passes (a reader ran out of
    shards within an epoch and started another pass), resume_skipped (samples passed over to reach
    start_step; drops inside that range are booked here, not under their reason). `summary()` formats them;
    `log_counters()` logs them. Each dropped sample is also logged (first 10 per reader, then every 1000th).
    Iterating the TrainLoader again starts again at start_step.

Semantics the trainer relies on (details in groupvit.data.stream):
- Reproducible: same shards, config, seed, batch size, world size and num_workers -> the same batches, bit
  for bit, whatever the machine's speed.
- Exact resume: `start_step=N` yields exactly the batches an uninterrupted loader yields from step N on,
  provided those same settings are unchanged (num_workers included: it decides which reader makes which
  batch). Steps are counted per rank, i.e. optimizer steps.
- Epochs: every epoch reshuffles the shard order (seed, epoch) and gives each rank and reader its slice; each
  reader delivers exactly its share of the epoch's steps, starting another pass over its shards if they run
  short and leaving the rest unread if they hold more. With shards of equal size and a shard count divisible
  by world_size x readers, an epoch of epoch_samples = dataset size is one clean pass over the data.
- Readers = max(1, num_workers). Fewer shards than world_size x readers: num_workers is lowered to
  len(shards) // world_size with a warning; fewer shards than world_size is an error.
- A reader whose shards hold no usable sample raises RuntimeError naming the shards (no silent hang);
  a damaged tar is counted (shard_error) and the reader moves on.
"""
from __future__ import annotations

import glob
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from braceexpand import braceexpand
from torch.utils.data import DataLoader

from groupvit.data.config import DataConfig
from groupvit.data.nouns import get_noun_extractor
from groupvit.data.prompts import get_templates
from groupvit.data.stream import COUNTER_KEYS, ReaderDataset, StreamPlan
from groupvit.data.transforms import TrainTransform

log = logging.getLogger(__name__)

__all__ = ["TrainLoader", "build_train_loader", "list_shards"]


def list_shards(patterns: str | Sequence[str]) -> list[str]:
    """Shard paths from brace patterns, globs and folders, in the given order (globs and folders sorted),
    without duplicates; raises FileNotFoundError naming a missing file or a pattern that matches nothing."""
    if isinstance(patterns, str):
        patterns = [patterns]
    found: list[str] = []
    for pattern in patterns:
        for path in braceexpand(pattern):
            if os.path.isdir(path):
                matches = sorted(glob.glob(os.path.join(path, "*.tar")))
                if not matches:
                    raise FileNotFoundError(f"no *.tar shards in folder {path}")
                found.extend(matches)
            elif glob.has_magic(path):
                matches = sorted(glob.glob(path))
                if not matches:
                    raise FileNotFoundError(f"no shard matches {path}")
                found.extend(matches)
            elif os.path.isfile(path):
                found.append(path)
            else:
                raise FileNotFoundError(f"shard not found: {path}")
    if not found:
        raise FileNotFoundError(f"no shards given ({list(patterns)})")
    return list(dict.fromkeys(found))


class TrainLoader:
    """An infinite, exactly resumable stream of train batches; see the module docstring."""

    def __init__(
        self,
        dataset: ReaderDataset,
        *,
        num_workers: int,
        pin_memory: bool,
        prefetch_factor: int,
        seed: int,
    ) -> None:
        self.dataset = dataset
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.prefetch_factor = prefetch_factor
        self.seed = seed
        self.start_step = dataset.plan.start_step
        self.steps_per_epoch = dataset.plan.steps_per_epoch
        self.next_step = self.start_step
        self._reader_counts: dict[int, dict[str, int]] = {}

    @property
    def shards(self) -> tuple[str, ...]:
        return self.dataset.plan.shards

    def epoch_of(self, step: int) -> int:
        return step // self.steps_per_epoch

    def __iter__(self) -> Iterator[dict[str, Any]]:
        loader = DataLoader(
            self.dataset,
            batch_size=None,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            prefetch_factor=self.prefetch_factor if self.num_workers > 0 else None,
            # Own generator: creating the iterator must not consume the trainer's global random stream.
            generator=torch.Generator().manual_seed(self.seed),
        )
        self.next_step = self.start_step
        self._reader_counts = {}
        for batch in loader:
            step, reader = int(batch.pop("_step")), int(batch.pop("_reader"))
            self._reader_counts[reader] = {k: int(v) for k, v in batch.pop("_counters").items()}
            if step != self.next_step:
                raise RuntimeError(f"loader order broken: got step {step} from reader {reader}, expected {self.next_step}")
            self.next_step = step + 1
            yield batch

    def counters(self) -> dict[str, int]:
        """Skip counters summed over readers, as of the batches consumed so far."""
        total = dict.fromkeys(COUNTER_KEYS, 0)
        for counts in self._reader_counts.values():
            for key, value in counts.items():
                total[key] = total.get(key, 0) + value
        return total

    def summary(self) -> str:
        counts = self.counters()
        dropped = sum(counts[k] for k in ("corrupt_image", "missing_image", "missing_caption", "bad_json", "short_caption"))
        details = ", ".join(f"{k}={v}" for k, v in counts.items() if v and k != "samples")
        return f"data: {counts['samples']} samples, {dropped} dropped" + (f" ({details})" if details else "")

    def log_counters(self, level: int = logging.INFO) -> None:
        log.log(level, "%s", self.summary())


def build_train_loader(
    data: DataConfig,
    shards: Sequence[str],
    *,
    image_size: int,
    batch_size: int,
    tokenize: Callable[[list[str]], torch.Tensor],
    seed: int,
    epoch_samples: int,
    start_step: int = 0,
    rank: int = 0,
    world_size: int = 1,
    num_workers: int | None = None,
    pin_memory: bool = False,
    prefetch_factor: int = 2,
) -> TrainLoader:
    """The train loader of one rank; `num_workers` defaults to data.num_workers. See the module docstring."""
    if batch_size < 1 or image_size < 1:
        raise ValueError(f"batch_size and image_size must be positive (got {batch_size}, {image_size})")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world_size {world_size}")
    if start_step < 0:
        raise ValueError(f"start_step must be >= 0 (got {start_step})")
    steps_per_epoch = epoch_samples // (batch_size * world_size)
    if steps_per_epoch < 1:
        raise ValueError(
            f"epoch_samples={epoch_samples} is less than one global batch ({batch_size} x {world_size} ranks)"
        )
    paths = tuple(list_shards(list(shards)))
    workers = data.num_workers if num_workers is None else num_workers
    if len(paths) < world_size:
        raise ValueError(f"{len(paths)} shards cannot be split over {world_size} ranks: {list(paths)}")
    if len(paths) < world_size * max(1, workers):
        reduced = len(paths) // world_size
        log.warning(
            "%d shards cannot feed %d ranks x %d workers; using num_workers=%d",
            len(paths), world_size, workers, reduced,
        )
        workers = reduced
    plan = StreamPlan(
        shards=paths,
        seed=seed,
        rank=rank,
        world_size=world_size,
        readers=max(1, workers),
        batch_size=batch_size,
        steps_per_epoch=steps_per_epoch,
        start_step=start_step,
        shuffle_buffer=data.shuffle_buffer,
    )
    num_prompts = data.multi_label_nouns
    dataset = ReaderDataset(
        plan,
        TrainTransform(data.augment, image_size),
        tokenize,
        min_caption_words=data.min_caption_words,
        num_prompts=num_prompts,
        templates=get_templates(data.prompt_templates),
        extract_nouns=get_noun_extractor(data.noun_extractor) if num_prompts > 0 else None,
    )
    return TrainLoader(dataset, num_workers=workers, pin_memory=pin_memory, prefetch_factor=prefetch_factor, seed=seed)
