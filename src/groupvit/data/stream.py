"""The deterministic per-reader sample stream behind `build_train_loader` (see groupvit.data.shards).

Why it is built this way: the training engine needs bit-identical resume, and a DataLoader with W workers over
an IterableDataset takes batch t from worker t % W (round-robin, in order). So every "reader" (one per worker,
or the main process when num_workers == 0) is a pure function of (seed, rank, reader, step):

- Steps are per rank. `S = steps_per_epoch`; step t belongs to epoch t // S, and reader r makes the batches of
  the steps t with t % R == r, in increasing order.
- Epoch e: the shard list is shuffled by (seed, e); rank k takes shards [k::world_size], reader r of that takes
  [r::R]. The reader streams those shards through a shuffle buffer seeded by (seed, e, rank, r, pass),
  decodes, drops bad samples, and hands out valid samples in order. If the epoch needs more samples than its
  shards hold, the reader starts another pass over them (new shard order, new buffer seed); what the epoch
  does not need is left unread. Epochs are independent, so a resume replays at most one epoch.
- Sample i of (epoch, reader) is augmented under the seed (seed, e, rank, r, i), so skipping samples never
  shifts another sample's random draws.
- Resuming at step N: the DataLoader's worker w plays reader (N + w) % R and starts at its first step >= N;
  within that epoch it skips the valid samples of its earlier batches. Skipped samples are read and their
  images decoded (a corrupt image in the skipped range must be dropped exactly as before), but not
  augmented or tokenized.
"""
from __future__ import annotations

import hashlib
import itertools
import logging
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import IterableDataset, get_worker_info

from groupvit.data.prompts import make_prompts
from groupvit.data.samples import DROP_REASONS, DecodedSample, SampleError, decode_sample, iter_shards
from groupvit.data.transforms import TrainTransform, seeded_cpu_rng

log = logging.getLogger(__name__)

COUNTER_KEYS = ("samples", *DROP_REASONS, "shard_error", "extra_passes", "resume_skipped")
_LOG_FIRST_DROPS = 10
_LOG_EVERY_DROPS = 1000


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any tuple of ints/strings, identical in every process (unlike `hash`)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def shuffled(items: Iterator[Any], size: int, rng: random.Random) -> Iterator[Any]:
    """Streaming shuffle: hold up to `size` items, emit a random held one per new item, then the rest."""
    if size <= 1:
        yield from items
        return
    buffer: list[Any] = []
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            continue
        slot = rng.randrange(size)
        yield buffer[slot]
        buffer[slot] = item
    rng.shuffle(buffer)
    yield from buffer


@dataclass(frozen=True)
class StreamPlan:
    """Which reader reads which shards in which epoch, and which steps it serves."""

    shards: tuple[str, ...]
    seed: int
    rank: int
    world_size: int
    readers: int
    batch_size: int
    steps_per_epoch: int
    start_step: int
    shuffle_buffer: int

    def reader_shards(self, epoch: int, reader: int, pass_index: int = 0) -> list[str]:
        order = list(self.shards)
        random.Random(derive_seed(self.seed, "shards", epoch)).shuffle(order)
        mine = order[self.rank :: self.world_size][reader :: self.readers]
        if pass_index > 0:
            random.Random(derive_seed(self.seed, "pass", epoch, self.rank, reader, pass_index)).shuffle(mine)
        return mine

    def first_step(self, reader: int) -> int:
        """The first step >= start_step that `reader` serves."""
        return self.start_step + (reader - self.start_step) % self.readers

    def _served_below(self, step: int, reader: int) -> int:
        """How many steps in [0, step) reader serves."""
        return max(0, -(-(step - reader) // self.readers))

    def batches_before(self, step: int, reader: int) -> int:
        """How many of reader's batches in step's epoch come before `step`."""
        epoch_start = (step // self.steps_per_epoch) * self.steps_per_epoch
        return self._served_below(step, reader) - self._served_below(epoch_start, reader)


class _Counts:
    """Per-reader counters; while `skipping`, everything passed over is booked as resume_skipped."""

    def __init__(self, reader: int) -> None:
        self.reader = reader
        self.values = dict.fromkeys(COUNTER_KEYS, 0)
        self.skipping = False
        self.drops = 0

    def drop(self, error: SampleError) -> None:
        if self.skipping:
            self.values["resume_skipped"] += 1
            return
        self.values[error.reason] += 1
        self.drops += 1
        if self.drops <= _LOG_FIRST_DROPS or self.drops % _LOG_EVERY_DROPS == 0:
            log.warning("reader %d skips a sample (%s); %d skipped so far", self.reader, error, self.drops)


class ReaderDataset(IterableDataset):
    """Yields ready batches (dicts) for one rank; each DataLoader worker runs one reader of the plan."""

    def __init__(
        self,
        plan: StreamPlan,
        transform: TrainTransform,
        tokenize: Callable[[list[str]], torch.Tensor],
        *,
        min_caption_words: int,
        num_prompts: int,
        templates: Sequence[str],
        extract_nouns: Callable[[str], list[str]] | None,
    ) -> None:
        super().__init__()
        self.plan = plan
        self.transform = transform
        self.tokenize = tokenize
        self.min_caption_words = min_caption_words
        self.num_prompts = num_prompts
        self.templates = tuple(templates)
        self.extract_nouns = extract_nouns

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        if workers != self.plan.readers:
            raise RuntimeError(f"plan has {self.plan.readers} readers but the DataLoader runs {workers} workers")
        return self._batches((self.plan.start_step + worker) % self.plan.readers)

    def _epoch_stream(self, epoch: int, reader: int, counts: _Counts) -> Iterator[DecodedSample]:
        plan = self.plan
        for pass_index in itertools.count():
            shards = plan.reader_shards(epoch, reader, pass_index)
            rng = random.Random(derive_seed(plan.seed, "buffer", epoch, plan.rank, reader, pass_index))
            good = 0
            for raw in shuffled(iter_shards(shards, counts.values), plan.shuffle_buffer, rng):
                try:
                    sample = decode_sample(raw, self.min_caption_words)
                except SampleError as error:
                    counts.drop(error)
                    continue
                good += 1
                yield sample
            if good == 0:
                raise RuntimeError(
                    f"no readable sample in shards {shards} (rank {plan.rank}, reader {reader}, epoch {epoch}); "
                    f"counters: { {k: v for k, v in counts.values.items() if v} }"
                )
            counts.values["extra_passes"] += 1

    def _batches(self, reader: int) -> Iterator[dict[str, Any]]:
        plan = self.plan
        counts = _Counts(reader)
        step = plan.first_step(reader)
        epoch, stream, index = -1, iter(()), 0
        while True:
            if step // plan.steps_per_epoch != epoch:
                epoch = step // plan.steps_per_epoch
                stream, index = self._epoch_stream(epoch, reader, counts), 0
                counts.skipping = True
                for _ in range(plan.batches_before(step, reader) * plan.batch_size):
                    next(stream)
                    counts.values["resume_skipped"] += 1
                    index += 1
                counts.skipping = False
            samples = [next(stream) for _ in range(plan.batch_size)]
            batch = self._collate(samples, epoch, reader, index)
            index += plan.batch_size
            counts.values["samples"] += plan.batch_size
            batch.update(_step=step, _reader=reader, _counters=dict(counts.values))
            yield batch
            step += plan.readers

    def _collate(self, samples: list[DecodedSample], epoch: int, reader: int, first_index: int) -> dict[str, Any]:
        plan = self.plan
        images, captions, prompts = [], [], []
        with seeded_cpu_rng():
            for offset, sample in enumerate(samples):
                seed = derive_seed(plan.seed, "sample", epoch, plan.rank, reader, first_index + offset)
                image, caption = self.transform(sample.image, sample.caption, seed)
                images.append(image)
                captions.append(caption)
                if self.num_prompts > 0:
                    nouns = sample.nouns
                    if nouns is None:
                        nouns = self.extract_nouns(sample.caption) if self.extract_nouns is not None else []
                    prompts.extend(make_prompts(caption, nouns, self.num_prompts, self.templates, random.Random(seed)))
        tokens = self.tokenize(captions + prompts)
        batch_size = len(samples)
        if not isinstance(tokens, torch.Tensor) or tokens.ndim != 2 or tokens.shape[0] != len(captions) + len(prompts):
            shape = tuple(tokens.shape) if isinstance(tokens, torch.Tensor) else type(tokens).__name__
            raise TypeError(f"tokenize must return a [N, L] tensor for N={len(captions) + len(prompts)} texts, got {shape}")
        tokens = tokens.long()
        batch: dict[str, Any] = {
            "image": torch.stack(images),
            "text": tokens[:batch_size].clone(),
            "key": [s.key for s in samples],
            "caption": captions,
        }
        if self.num_prompts > 0:
            batch["prompts"] = tokens[batch_size:].reshape(batch_size, self.num_prompts, -1).clone()
        return batch
