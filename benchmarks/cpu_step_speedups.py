"""What CPU-side changes buy the default preset's training: fused AdamW, the tokenizer's caption cache, bf16 autocast,
and kernel choices that leave the model as it is (math attention, channels-last stem, tanh GELU).

    python benchmarks/cpu_step_speedups.py [--rounds 3] [--steps 12] [--batches 12] [--threads 1] [--compile]

Why: the default study is six or seven CPU trainings and must fit the workflow's 20-minute target. A profile of one step
(1 thread) found AdamW's per-parameter loop at ~1/6 of it, almost all on the bag-of-words text tower's 49408 x 128
embedding (sqrt, div, lerp, ... as separate passes), and caption cleaning + BPE at ~40% of the loader's time (the
loader worker shares the two cores with the trainings). Both are measured side by side here, alternating within
each round, on the default preset's `groupvit_2stage` model and loader over a freshly generated small world:
  step:   median wall time of zero_grad + forward + loss + backward + clip + AdamW step on one fixed batch, with
          torch's per-parameter AdamW (fused=None, the CPU default) vs fused AdamW (what build_optimizer now uses),
          and fused AdamW with the forward under bf16 autocast (which the trainer never uses on a CPU; fast on
          CPUs with AVX512-BF16/AMX, slow where bf16 is emulated); then, each with fused AdamW: attention through
          torch's math kernel instead of the CPU flash kernel, the conv stem and images in channels-last memory format,
          and GELU's tanh approximation (different numbers: a candidate only if it is faster); with --compile also
          torch.compile (inductor) of the model, its compile time reported apart (`compile_s`);
  loader: median time per batch of the real loader (0 workers: the work a loader worker does), with the tokenizer's
          caption cache vs with the cache disabled (every caption cleaned and BPE-encoded again).
Writes results/benchmarks/cpu_step_speedups.json.
"""
from __future__ import annotations

import argparse
import contextlib
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


# step variants: name -> (fused AdamW, bf16 autocast, kernel change)
STEP_VARIANTS = {
    "adamw_loop": (None, False, None), "adamw_fused": (True, False, None), "adamw_fused_bf16": (True, True, None),
    "sdpa_math": (True, False, "sdpa_math"), "channels_last": (True, False, "channels_last"),
    "gelu_tanh": (True, False, "gelu_tanh"),
}


def step_times(cfg, inputs: dict, steps: int, fused: bool | None, bf16: bool = False, change: str | None = None,
               warmup: int = 3) -> tuple[list[float], float]:
    """Times of `steps` steps after `warmup` ones, and the warmup's total time (torch.compile's compile time)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    seed_everything(0)
    model = build_model(cfg.model).train()
    if change == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        inputs = {**inputs, "image": inputs["image"].contiguous(memory_format=torch.channels_last)}
    if change == "gelu_tanh":
        for module in model.modules():
            if isinstance(module, torch.nn.GELU):
                module.approximate = "tanh"
    forward = torch.compile(model) if change == "compile" else model
    loss_fn = GroupViTLoss(cfg.train.loss)
    groups = [g for g in param_groups(model, 0.05, cfg.train.no_weight_decay_keywords) if g["params"]]
    opt = torch.optim.AdamW(groups, lr=1e-4, fused=fused)
    times, began = [], time.perf_counter()
    for i in range(warmup + steps):
        start = time.perf_counter()
        if i == warmup:
            warmup_s = start - began
        # the math kernel, or torch's own pick (the flash kernel on a CPU)
        kernels = sdpa_kernel(SDPBackend.MATH) if change == "sdpa_math" else contextlib.nullcontext()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16), kernels:
            out = forward(**inputs)
        loss_fn(**out)["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.clip_grad, foreach=True)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times, warmup_s


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
    parser.add_argument("--compile", action="store_true", help="also torch.compile the model (minutes of compiling)")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "benchmarks" / "cpu_step_speedups.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    overrides = ["world.num_train=2048", "world.num_val=2", "world.num_eval=2", "world.shard_size=512",
                 "data.num_workers=0"]
    cfg = load_config(REPO / "config" / "config.yaml", "default", overrides).for_variant("groupvit_2stage", 0)
    variants = {**STEP_VARIANTS, **({"compile": (True, False, "compile")} if args.compile else {})}
    warmups: dict[str, list[float]] = {name: [] for name in variants}
    samples: dict[str, list[float]] = {**{name: [] for name in variants},
                                       "loader_no_cache": [], "loader_cache": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "synthetic"
        generate_world(cfg.world, root, workers=0, progress=False)
        tokenizer = build_model(cfg.model).tokenizer
        batch = next(synthetic_train_data(cfg, root).make_batches(
            start_step=0, batch_size=cfg.train.batch_size, rank=0, world_size=1, seed=0, tokenize=tokenizer))
        inputs = {k: batch[k] for k in ("image", "text", "prompts") if k in batch}
        for r in range(args.rounds):
            order = list(variants)
            for name in order if r % 2 == 0 else order[::-1]:
                times, warmup_s = step_times(cfg, inputs, args.steps, *variants[name])
                samples[name] += times
                warmups[name].append(warmup_s)
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
        # against fused AdamW, the trainer's step: > 1 is faster
        **{f"step_speedup_{name}": round(median_ms["adamw_fused"] / median_ms[name], 3)
           for name in variants if variants[name][2]},
        **({"compile_s": round(statistics.median(warmups["compile"]), 1)} if args.compile else {}),
        "loader_speedup_cache": round(median_ms["loader_no_cache"] / median_ms["loader_cache"], 3),
    }
    atomic_write_json(result, args.out)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
