"""Throughput of the training shard reader: read + decode + augment + prompts + tokenize, in samples/s.

Why: the trainer must not wait on data. This writes a few thousand 64x64 samples into shards in a temporary
folder (through the synthetic world generator when it is importable, else plain procedural images in the same
layout), then times `build_train_loader` at image_size 64, batch 64 with num_workers 0, 1, 2 and RandAugment on
and off. Figures are steady-state (the first batch, which includes worker start-up and the shuffle buffer fill,
is timed separately). Prints a table and writes results/benchmarks/loader.json.

    python benchmarks/bench_loader.py [--samples 3072] [--batches 24] [--out results/benchmarks/loader.json]
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import tarfile
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from groupvit.data.config import DataConfig
from groupvit.data.shards import build_train_loader, list_shards

# The fallback tokenizer is the tests' trivial one (tests/helpers/char_tokenizer.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers.char_tokenizer import CharTokenizer  # noqa: E402


def _write_plain_shards(root: Path, samples: int, per_shard: int, size: int) -> None:
    """Procedural images (a few coloured ellipses/rectangles) with captions and nouns, contract layout."""
    rng = np.random.default_rng(0)
    names = ["circle", "square"]
    root.mkdir(parents=True, exist_ok=True)
    for shard in range(0, samples, per_shard):
        with tarfile.open(root / f"shard-{shard // per_shard:06d}.tar", "w") as tar:
            for index in range(shard, min(shard + per_shard, samples)):
                image = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(0, 255, 3)))
                draw = ImageDraw.Draw(image)
                nouns = []
                for _ in range(int(rng.integers(1, 4))):
                    x0, y0 = rng.integers(0, size // 2, 2)
                    box = (int(x0), int(y0), int(x0 + size // 3), int(y0 + size // 3))
                    kind = names[int(rng.integers(0, 2))]
                    fill = tuple(int(v) for v in rng.integers(0, 255, 3))
                    (draw.ellipse if kind == "circle" else draw.rectangle)(box, fill=fill)
                    nouns.append(kind)
                nouns = list(dict.fromkeys(nouns))
                buf = io.BytesIO()
                image.save(buf, format="png")
                key = f"{index:09d}"
                caption = "a picture of " + " left of a ".join(nouns) + "."
                files = {"png": buf.getvalue(), "txt": caption.encode(),
                         "json": json.dumps({"key": key, "caption": caption, "nouns": nouns}).encode()}
                for ext, data in files.items():
                    info = tarfile.TarInfo(f"{key}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))


def make_shards(root: Path, samples: int, per_shard: int, size: int) -> tuple[list[str], str]:
    try:
        from groupvit.data.world.config import WorldConfig
        from groupvit.data.world.generate import generate_world

        cfg = WorldConfig(num_train=samples, num_val=2, num_eval=2, shard_size=per_shard, image_size=size)
        generate_world(cfg, root / "world", workers=0, progress=False)
        return list_shards(str(root / "world" / "train")), "synthetic world (generate_world)"
    except Exception as exc:  # generator missing or rejecting the defaults: fall back to plain shards
        print(f"generate_world unavailable ({type(exc).__name__}: {exc}); writing plain shards")
        _write_plain_shards(root / "plain", samples, per_shard, size)
        return list_shards(str(root / "plain")), "plain procedural shards"


def pick_tokenizer():
    """CLIP's BPE tokenizer (what GroupViT uses) when open_clip is importable, else a trivial one."""
    try:
        import open_clip

        return open_clip.tokenize, "open_clip.tokenize (CLIP BPE, context 77)"
    except Exception:
        return CharTokenizer(77), "CharTokenizer (trivial)"


def time_loader(shards, tokenize, *, workers: int, randaugment: bool, batches: int, samples: int) -> dict:
    base = DataConfig(shuffle_buffer=1000, num_workers=workers, multi_label_nouns=3)
    data = replace(base, augment=replace(base.augment, randaugment=randaugment))
    loader = build_train_loader(
        data, shards, image_size=64, batch_size=64, tokenize=tokenize, seed=0, epoch_samples=samples
    )
    start = time.perf_counter()
    stream = iter(loader)
    next(stream)
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(batches):
        next(stream)
    elapsed = time.perf_counter() - start
    del stream
    return {
        "num_workers": workers,
        "randaugment": randaugment,
        "batches": batches,
        "first_batch_s": round(first, 3),
        "samples_per_s": round(batches * 64 / elapsed, 1),
        "ms_per_batch": round(1000 * elapsed / batches, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=3072)
    parser.add_argument("--per-shard", type=int, default=384)
    parser.add_argument("--batches", type=int, default=24)
    parser.add_argument("--out", default="results/benchmarks/loader.json")
    args = parser.parse_args()
    tokenize, tokenizer_name = pick_tokenizer()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        shards, source = make_shards(Path(tmp), args.samples, args.per_shard, 64)
        print(f"{len(shards)} shards, {args.samples} samples ({source}) in {time.perf_counter() - start:.1f} s")
        rows = []
        for randaugment in (False, True):
            for workers in (0, 1, 2):
                row = time_loader(shards, tokenize, workers=workers, randaugment=randaugment,
                                  batches=args.batches, samples=args.samples)
                rows.append(row)
                print(f"num_workers={workers} randaugment={str(randaugment):5}  {row['samples_per_s']:8.1f} samples/s"
                      f"  ({row['ms_per_batch']} ms/batch, first batch {row['first_batch_s']} s)")
    result = {
        "benchmark": "train shard reader (read+decode+augment+prompts+tokenize)",
        "image_size": 64,
        "batch_size": 64,
        "multi_label_nouns": 3,
        "shards": len(shards),
        "samples": args.samples,
        "source": source,
        "tokenizer": tokenizer_name,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
                    "torch_threads": torch.get_num_threads()},
        "results": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
