"""Generate the whole synthetic world on disk: train shards (webdataset), val and eval (VOC 2012 layout) and
the data card.

Work is cut into units (one train shard, or a chunk of VOC images); every sample depends only on
(seed, split, index), so units run in any order on any number of processes and the bytes come out the same.
The world is built in a hidden sibling directory and renamed into place at the end: a reader sees either the
previous world or the complete new one, never a partial one.

    from groupvit.data.world.config import WorldConfig
    from groupvit.data.world.generate import generate_world
    card = generate_world(WorldConfig(num_train=2000), "data/smoke/synthetic", workers=2)
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from groupvit.data.voc import write_palette_png
from groupvit.data.world.config import WorldConfig
from groupvit.data.world.datacard import build_card, summarise, write_card
from groupvit.data.world.sample import Record, build_record, render_record, render_sample, sample_key
from groupvit.data.world.validate import validate_world
from groupvit.atomic import atomic_write_bytes, atomic_write_text
from groupvit.data.world.writers import DeterministicTarWriter, encode_jpeg, \
    encode_png

__all__ = ["generate_world", "render_sample", "resolve_workers"]

VOC_CHUNK = 100  # images per val/eval work unit
EXAMPLES_PER_SPLIT = 5  # captions quoted in the data card


@dataclass(frozen=True)
class Unit:
    split: str
    start: int
    stop: int
    shard: int = -1  # train shard number


@dataclass
class UnitResult:
    unit: Unit
    summaries: list[dict] = field(default_factory=list)
    annotations: list[str] = field(default_factory=list)  # VOC splits: one json line per image
    captions: list[str] = field(default_factory=list)  # the first few, for the card


def resolve_workers(workers: int) -> int:
    """0 means every core this process may use."""
    if workers > 0:
        return workers
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def plan_units(cfg: WorldConfig) -> list[Unit]:
    units = [Unit("train", s, min(s + cfg.shard_size, cfg.num_train), n)
             for n, s in enumerate(range(0, cfg.num_train, cfg.shard_size))]
    for split, count in (("val", cfg.num_val), ("eval", cfg.num_eval)):
        units += [Unit(split, s, min(s + VOC_CHUNK, count)) for s in range(0, count, VOC_CHUNK)]
    return units


def _make_unit(cfg: WorldConfig, root: Path, unit: Unit) -> UnitResult:
    """Render one unit's samples and write them under `root` (every file atomically)."""
    result = UnitResult(unit)
    previous: Record | None = None
    tar = DeterministicTarWriter(root / "train" / f"shard-{unit.shard:06d}.tar") if unit.split == "train" else None
    try:
        for index in range(unit.start, unit.stop):
            record = build_record(cfg, unit.split, index, previous)
            previous = record
            rendered, meta = render_record(cfg, record)
            key = sample_key(index)
            if tar is not None:
                tar.add(f"{key}.png", encode_png(rendered.image))
                tar.add(f"{key}.txt", meta["caption"].encode("utf-8"))
                tar.add(f"{key}.json", json.dumps(meta).encode("utf-8"))
            else:
                split_dir = root / unit.split
                atomic_write_bytes(split_dir / "JPEGImages" / f"{key}.jpg", encode_jpeg(rendered.image))
                write_palette_png(split_dir / "SegmentationClass" / f"{key}.png", rendered.class_mask)
                result.annotations.append(json.dumps(meta))
            result.summaries.append(summarise(meta))
            if index - unit.start < EXAMPLES_PER_SPLIT:
                result.captions.append(meta["caption"])
    except BaseException:
        if tar is not None:
            tar.abort()
        raise
    if tar is not None:
        tar.close()
    return result


def _make_unit_star(args: tuple[WorldConfig, Path, Unit]) -> UnitResult:
    return _make_unit(*args)


def _run_units(cfg: WorldConfig, root: Path, units: list[Unit], workers: int, progress: bool) -> list[UnitResult]:
    total = sum(u.stop - u.start for u in units)
    results: list[UnitResult] = []
    with tqdm(total=total, unit="img", desc="synthetic world", disable=not progress, dynamic_ncols=True) as bar:
        if workers <= 1 or len(units) <= 1:
            for unit in units:
                results.append(_make_unit(cfg, root, unit))
                bar.update(unit.stop - unit.start)
        else:
            # spawn, not fork: the caller may hold torch threads, and forking a threaded process can deadlock
            ctx = mp.get_context("spawn")
            with ctx.Pool(processes=min(workers, len(units))) as pool:
                for res in pool.imap_unordered(_make_unit_star, [(cfg, root, u) for u in units], chunksize=1):
                    results.append(res)
                    bar.update(res.unit.stop - res.unit.start)
    return sorted(results, key=lambda r: (r.unit.split, r.unit.start))


def _write_voc_index(cfg: WorldConfig, root: Path, split: str, results: list[UnitResult], count: int) -> None:
    split_dir = root / split
    atomic_write_text(split_dir / "ImageSets" / "Segmentation" / "val.txt",
                      "".join(f"{sample_key(i)}\n" for i in range(count)))
    atomic_write_text(split_dir / "class_names.txt", "".join(f"{n}\n" for n in ["background", *cfg.classes]))
    lines = [line for r in results if r.unit.split == split for line in r.annotations]
    atomic_write_text(split_dir / "annotations.jsonl", "".join(f"{line}\n" for line in lines))


def _swap_into_place(tmp: Path, out_dir: Path) -> None:
    """Replace `out_dir` by `tmp` with renames only, so the old world stays whole until the new one is."""
    old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
    if out_dir.exists():
        os.replace(out_dir, old)
    os.replace(tmp, out_dir)
    if old.exists():
        shutil.rmtree(old)


def _remove_stale_temps(out_dir: Path) -> None:
    """Delete temp/old siblings left by runs that were killed outright (their process no longer exists)."""
    for path in out_dir.parent.glob(f".{out_dir.name}.*-*"):
        pid = path.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except PermissionError:  # alive, someone else's
            pass


def generate_world(cfg: WorldConfig, out_dir: str | Path, workers: int = 0, progress: bool = True) -> dict:
    """Write the world for `cfg` to `out_dir` (replacing any previous one) and return its data card.

    `workers`: processes to use, 0 = all available cores. The output is byte-identical for any worker count."""
    validate_world(cfg)
    out_dir = Path(out_dir).resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(out_dir)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "train").mkdir(parents=True)
    try:
        results = _run_units(cfg, tmp, plan_units(cfg), resolve_workers(workers), progress)
        summaries: dict[str, list[dict]] = {}
        examples: dict[str, list[str]] = {}
        for split, count in (("train", cfg.num_train), ("val", cfg.num_val), ("eval", cfg.num_eval)):
            mine = [r for r in results if r.unit.split == split]
            summaries[split] = [s for r in mine for s in r.summaries]
            examples[split] = [c for r in mine for c in r.captions][:EXAMPLES_PER_SPLIT]
            if split != "train" and count > 0:
                _write_voc_index(cfg, tmp, split, results, count)
        card = build_card(cfg, tmp, summaries, examples)
        write_card(tmp, card)
        _swap_into_place(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return card
