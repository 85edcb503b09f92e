"""What CPU-side changes buy the default preset's training: fused AdamW, the tokenizer's caption cache, bf16 autocast.

    python benchmarks/cpu_step_speedups.py [--rounds 3] [--steps 12] [--batches 12] [--threads 1]

Why: the default study is six or seven CPU trainings and must fit the workflow's 20-minute target. A profile of one step
(1 thread) found AdamW's per-parameter loop at ~1/6 of it, almost all on the bag-of-words text tower's 49408 x 128
embedding (sqrt, div, lerp, ... as separate passes), and caption cleaning + BPE at ~40% of the loader's time (the
loader worker shares the two cores with the trainings). Both are measured side by side here, alternating within
each round, on the default preset's `groupvit_2stage` model and loader over a freshly generated small world:
  step:   median wall time of zero_grad + forward + loss + backward + clip + AdamW step on one fixed batch, with
          torch's per-parameter AdamW (fused=None, the CPU default) vs fused AdamW (what build_optimizer now uses),
          and fused AdamW with the forward under bf16 autocast (which the trainer never uses on a CPU; fast on
          CPUs with AVX512-BF16/AMX, slow where bf16 is emulated);
  loader: median time per batch of the real loader (0 workers: the work a loader worker does), with the tokenizer's
          caption cache vs with the cache disabled (every caption cleaned and BPE-encoded again).
Writes results/benchmarks/cpu_step_speedups.json.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from groupvit.atomic import atomic_write_json
from groupvit.config import load_config
from groupvit.data.world.generate import generate_world
from groupvit.model import GroupViTLoss, build_model
from groupvit.train.data_source import synthetic_train_data
from groupvit.train.optim import param_groups
from groupvit.train.runner import seed_everything

REPO = Path(__file__).resolve().parents[1]


class _NoCache(dict):
    """A caption cache that never keeps anything: the tokenizer as it was before the cache."""

    def __setitem__(self, key, value) -> None:
        pass


def step_times(cfg, inputs: dict, steps: int, fused: bool | None, bf16: bool = False, warmup: int = 3) -> list[float]:
    seed_everything(0)
    model = build_model(cfg.model).train()
    loss_fn = GroupViTLoss(cfg.train.loss)
    groups = [g for g in param_groups(model, 0.05, cfg.train.no_weight_decay_keywords) if g["params"]]
    opt = torch.optim.AdamW(groups, lr=1e-4, fused=fused)
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(**inputs)
        loss_fn(**out)["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.clip_grad, foreach=True)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def loader_times(cfg, root: Path, batches: int, cache: bool) -> list[float]:
    tokenizer = build_model(cfg.model).tokenizer
    if not cache:
        tokenizer.tables.text_cache = _NoCache()
    data = synthetic_train_data(cfg, root)
    it = data.make_batches(start_step=0, batch_size=cfg.train.batch_size, rank=0, world_size=1, seed=0,
                           tokenize=tokenizer)
    next(it)  # shuffle buffer fill
    times = []
    for _ in range(batches):
        start = time.perf_counter()
        next(it)
        times.append(time.perf_counter() - start)
    return times


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batches", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: what a study job gets on 2 cores)")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "benchmarks" / "cpu_step_speedups.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    overrides = ["world.num_train=2048", "world.num_val=2", "world.num_eval=2", "world.shard_size=512",
                 "data.num_workers=0"]
    cfg = load_config(REPO / "config" / "config.yaml", "default", overrides).for_variant("groupvit_2stage", 0)
    samples: dict[str, list[float]] = {"adamw_loop": [], "adamw_fused": [], "adamw_fused_bf16": [],
                                       "loader_no_cache": [], "loader_cache": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "synthetic"
        generate_world(cfg.world, root, workers=0, progress=False)
        tokenizer = build_model(cfg.model).tokenizer
        batch = next(synthetic_train_data(cfg, root).make_batches(
            start_step=0, batch_size=cfg.train.batch_size, rank=0, world_size=1, seed=0, tokenize=tokenizer))
        inputs = {k: batch[k] for k in ("image", "text", "prompts") if k in batch}
        for r in range(args.rounds):
            order = [(None, False, "adamw_loop"), (True, False, "adamw_fused"), (True, True, "adamw_fused_bf16")]
            for fused, bf16, name in order if r % 2 == 0 else order[::-1]:
                samples[name] += step_times(cfg, inputs, args.steps, fused, bf16)
            for cache, name in [(False, "loader_no_cache"), (True, "loader_cache")][:: 1 if r % 2 == 0 else -1]:
                samples[name] += loader_times(cfg, root, args.batches, cache)
    median_ms = {k: round(1000 * statistics.median(v), 1) for k, v in samples.items()}
    result = {
        "benchmark": "cpu_step_speedups",
        "command": " ".join(["python benchmarks/cpu_step_speedups.py", *(argv if argv is not None else sys.argv[1:])]),
        "cpu": platform.processor() or platform.machine(),
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "batch_size": cfg.train.batch_size,
        "rounds": args.rounds,
        "median_ms": median_ms,
        "step_speedup_fused": round(median_ms["adamw_loop"] / median_ms["adamw_fused"], 3),
        "step_speedup_fused_bf16": round(median_ms["adamw_loop"] / median_ms["adamw_fused_bf16"], 3),
        "loader_speedup_cache": round(median_ms["loader_no_cache"] / median_ms["loader_cache"], 3),
    }
    atomic_write_json(result, args.out)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
