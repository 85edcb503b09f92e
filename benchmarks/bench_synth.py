"""How fast the synthetic world is generated, and how big it is on disk.

Times `generate_world` on N train samples with 1 and with 2 worker processes (every run also writes a small
val/eval split so the VOC files' size is measured too), then extrapolates the size of the default world
(50k train + 300 val + 500 eval at 64 px). Prints the figures and writes results/benchmarks/synth.json.

    .venv/bin/python benchmarks/bench_synth.py --samples 2000 --workers 1 2
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

from groupvit.data.world.config import WorldConfig
from groupvit.data.world.generate import generate_world

ROOT = Path(__file__).resolve().parents[1]
VOC_SAMPLES = 100  # per VOC split, for the per-image size of val/eval


def _bytes_under(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _cpu_seconds() -> float:
    self_, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return self_.ru_utime + self_.ru_stime + children.ru_utime + children.ru_stime


def run_once(cfg: WorldConfig, workers: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench_synth_") as tmp:
        out = Path(tmp) / "world"
        cpu0 = _cpu_seconds()
        start = time.perf_counter()
        generate_world(cfg, out, workers=workers, progress=False)
        seconds = time.perf_counter() - start
        cpu = _cpu_seconds() - cpu0
        train_bytes = _bytes_under(out / "train")
        voc_bytes = _bytes_under(out / "val") + _bytes_under(out / "eval")
    total = cfg.num_train + cfg.num_val + cfg.num_eval
    return {
        "workers": workers,
        "samples": total,
        "seconds": round(seconds, 3),
        "samples_per_s": round(total / seconds, 1),
        # CPU time of this process and its workers: robust to other jobs sharing the machine
        "samples_per_cpu_s": round(total / max(cpu, 1e-9), 1),
        "load_average_1min_after": round(os.getloadavg()[0], 2),
        "train_bytes_per_sample": train_bytes / cfg.num_train,
        "voc_bytes_per_image": voc_bytes / (cfg.num_val + cfg.num_eval),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000, help="train samples per timed run")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "benchmarks" / "synth.json")
    args = parser.parse_args(argv)

    default = WorldConfig()
    cfg = dataclasses.replace(default, num_train=args.samples, num_val=VOC_SAMPLES, num_eval=VOC_SAMPLES,
                              shard_size=max(1, args.samples // 4))
    runs = [run_once(cfg, w) for w in args.workers]
    train_per = runs[0]["train_bytes_per_sample"]
    voc_per = runs[0]["voc_bytes_per_image"]
    default_bytes = default.num_train * train_per + (default.num_val + default.num_eval) * voc_per
    result = {
        "benchmark": "synthetic world generation (default WorldConfig, 64 px)",
        "machine": {"cpus": len(os.sched_getaffinity(0)), "python": platform.python_version(),
                    "processor": platform.processor() or platform.machine()},
        "runs": runs,
        "train_mb_per_1000_samples": round(train_per * 1000 / 1e6, 3),
        "voc_kb_per_image": round(voc_per / 1e3, 2),
        "default_world": {
            "num_train": default.num_train, "num_val": default.num_val, "num_eval": default.num_eval,
            "estimated_mb": round(default_bytes / 1e6, 1),
            "estimated_seconds_at_best_rate": round(
                (default.num_train + default.num_val + default.num_eval) / max(r["samples_per_s"] for r in runs), 1),
        },
    }
    for r in runs:
        print(f"workers={r['workers']}: {r['samples']} samples in {r['seconds']:.1f} s = {r['samples_per_s']:.0f}/s "
              f"({r['samples_per_cpu_s']:.0f} per CPU-second; load average {r['load_average_1min_after']})")
    print(f"train shards: {result['train_mb_per_1000_samples']:.2f} MB per 1000 samples; "
          f"VOC: {result['voc_kb_per_image']:.1f} kB per image (jpg + mask)")
    print(f"default world (50k + 300 + 500): about {result['default_world']['estimated_mb']:.0f} MB, "
          f"{result['default_world']['estimated_seconds_at_best_rate']:.0f} s at the best rate")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
