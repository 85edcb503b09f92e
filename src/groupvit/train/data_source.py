"""Where a run's training batches come from, and the two facts the runner needs before it starts.

The runner needs the number of training samples (to turn epochs into steps) and a content hash (for the run
summary) before building the loader; both come from the synthetic world's data card, or, for real webdataset
shards, from img2dataset's per-shard `_stats.json` files (falling back to counting the tar members). `TrainData`
bundles those facts with a factory for the batch iterator, so tests can hand the runner an in-memory source.
"""
from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from groupvit.dataclass_io import ConfigError

# make_batches(start_step=, batch_size=, rank=, world_size=, seed=, tokenize=, pin_memory=) -> iterator of batches;
# start_step counts this rank's batches (micro-batches when accumulating) and must be skipped exactly.
BatchFactory = Callable[..., Iterator[dict[str, Any]]]


@dataclass
class TrainData:
    num_samples: int
    content_hash: str
    make_batches: BatchFactory
    counters: Callable[[], dict[str, Any]] = dict  # the loader's skip counters, logged with the metrics
    shards: list[str] = field(default_factory=list)


class _LoaderSource:
    """Builds the shard loader at a data position and keeps it for its skip counters."""

    def __init__(self, cfg: Any, shards: list[str], num_samples: int) -> None:
        self.cfg, self.shards, self.num_samples = cfg, shards, num_samples
        self.loader: Any = None

    def __call__(self, *, start_step: int, batch_size: int, rank: int, world_size: int, seed: int,
                 tokenize: Callable | None, pin_memory: bool = False) -> Iterator[dict[str, Any]]:
        from groupvit.data.shards import build_train_loader

        self.loader = build_train_loader(
            self.cfg.data, self.shards, image_size=self.cfg.model.image.image_size, batch_size=batch_size,
            tokenize=tokenize, seed=seed, epoch_samples=self.num_samples, start_step=start_step, rank=rank,
            world_size=world_size, pin_memory=pin_memory,
        )
        return iter(self.loader)

    def counters(self) -> dict[str, Any]:
        counters = getattr(self.loader, "counters", None)
        return {f"data_{k}": v for k, v in counters().items()} if callable(counters) else {}


def read_datacard(root: Path) -> dict[str, Any]:
    path = root / "datacard.json"
    if not path.exists():
        raise ConfigError(
            f"data.source=synthetic: no data card at {path}; generate the world first "
            f"(`groupvit synth --preset <preset> --out {root}`)"
        )
    return json.loads(path.read_text())


def _card_train_count(card: dict[str, Any]) -> int:
    """The number of training pairs the data card declares (splits.train.samples)."""
    count = card.get("splits", {}).get("train", {}).get("samples")
    if not isinstance(count, int) or count < 1:
        raise ConfigError(f"data card: splits.train.samples missing or not a positive count (got {count!r})")
    return count


def synthetic_train_data(cfg: Any, root: str | Path | None = None) -> TrainData:
    """The world's train shards under `root` (default data/<preset>/synthetic), as its data card lists them."""
    root = Path(root) if root is not None else Path(cfg.data_dir) / "synthetic"
    card = read_datacard(root)
    listed = [root / s["path"] for s in card.get("splits", {}).get("train", {}).get("shards", [])]
    shards = [str(p) for p in listed] if listed else sorted(str(p) for p in (root / "train").glob("shard-*.tar"))
    missing = [p for p in shards if not Path(p).exists()]
    if not shards or missing:
        raise ConfigError(f"data.source=synthetic: train shards missing under {root} (e.g. {missing[:2]}); regenerate "
                          f"the world (`groupvit synth --preset {cfg.preset} --out {root}`)")
    num = _card_train_count(card)
    source = _LoaderSource(cfg, shards, num)
    digest = card.get("content_hash") or card.get("content_sha256") or "unknown"
    return TrainData(num, str(digest), source, source.counters, shards)


def expand_shards(patterns: list[str]) -> list[str]:
    """Brace patterns, globs and folders to existing shard paths (the loader's own rules)."""
    from groupvit.data.shards import list_shards

    try:
        return list_shards(patterns)
    except FileNotFoundError as err:
        raise ConfigError(f"data.shards: {err}") from None


def count_shard_samples(shard: str) -> int:
    """img2dataset's `NNNNN_stats.json` "successes" when present, else the distinct keys in the tar."""
    stats = Path(shard).with_name(Path(shard).stem + "_stats.json")
    if stats.exists():
        return int(json.loads(stats.read_text())["successes"])
    with tarfile.open(shard) as tar:
        return len({_sample_key(m.name) for m in tar if m.isfile()})


def _sample_key(member: str) -> str:
    """webdataset's key: the member path up to the first dot of its file name."""
    folder, _, name = member.rpartition("/")
    return f"{folder}/{name.split('.', 1)[0]}" if folder else name.split(".", 1)[0]


def webdataset_train_data(cfg: Any) -> TrainData:
    """Real image-text shards (CC3M, CC12M, YFCC14M, RedCaps as written by img2dataset)."""
    if not cfg.data.shards:
        raise ConfigError("data.shards: empty; data.source=webdataset needs shard paths or brace patterns")
    shards = expand_shards(cfg.data.shards)
    num = sum(count_shard_samples(s) for s in shards)
    digest = hashlib.sha256()
    for shard in shards:  # names and sizes: hashing terabytes of tars at every start is not an option
        digest.update(f"{Path(shard).name}:{Path(shard).stat().st_size}\n".encode())
    source = _LoaderSource(cfg, shards, num)
    return TrainData(num, "names+sizes:" + digest.hexdigest(), source, source.counters, shards)


def train_data_for(cfg: Any, data_dir: str | Path | None = None) -> TrainData:
    if cfg.data.source == "synthetic":
        return synthetic_train_data(cfg, data_dir)
    if cfg.data.source == "webdataset":
        return webdataset_train_data(cfg)
    raise ConfigError(f"data.source: {cfg.data.source!r} is not one of ['synthetic', 'webdataset']")


__all__ = [
    "TrainData", "count_shard_samples", "expand_shards", "read_datacard", "synthetic_train_data", "train_data_for",
    "webdataset_train_data",
]
