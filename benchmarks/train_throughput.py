"""Training throughput of the CPU study's model with the real loader, and what the training loop itself costs.

    .venv/bin/python benchmarks/train_throughput.py [--steps 40] [--num-train 1024] [--workers 1] [--batch 64]

Two measurements on the `default` preset's model (64 px, conv stem to patch 4, width 128, depths [2, 1, 1],
groups 16 -> 8, 2-layer text transformer, batch 64):
  engine: `groupvit.train.train` end to end over a freshly generated small world (loader workers, logging every 10
          steps, checkpoints as the preset sets them): samples/s, data-wait fraction, loop overhead fraction
          (data wait + logging + checkpointing over loop time) as the run summary reports them;
  bare:   the same model, optimiser and loss stepped on one pre-loaded batch with nothing else around it.
1 - engine/bare is an independent estimate of everything the engine adds (data, logging, checkpoints, syncs, and on
a 2-core machine the loader worker's competition for the cores); the steady variant leaves out the first log window
(first-step allocations) and the bookkeeping, like the bare figure leaves out its warm-up steps. Bare steps run
before and after the engine run to bracket drift in the machine's load (other processes share these cores).
Writes results/benchmarks/train_throughput.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from groupvit.config import load_config
from groupvit.data.world.generate import generate_world
from groupvit.model import GroupViTLoss, build_model
from groupvit.train.data_source import synthetic_train_data
from groupvit.train.optim import build_optimizer
from groupvit.train.runner import seed_everything, train

from bench_record import write_record  # beside this script

REPO = Path(__file__).resolve().parents[1]


def bare_step_throughput(cfg, batch: dict, steps: int, warmup: int = 3) -> float:
    """Samples/s of forward + backward + clip + AdamW on a fixed batch: the floor the engine is compared with."""
    seed_everything(0)
    model = build_model(cfg.model).train()
    loss_fn = GroupViTLoss(cfg.train.loss)
    opt = build_optimizer(model, lr=1e-4, weight_decay=0.05, no_decay_keywords=cfg.train.no_weight_decay_keywords)
    inputs = {k: batch[k] for k in ("image", "text", "prompts") if k in batch}
    start = 0.0
    for i in range(warmup + steps):
        if i == warmup:
            start = time.perf_counter()
        losses = loss_fn(**model(**inputs))
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.clip_grad, foreach=True)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return steps * inputs["image"].shape[0] / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--bare-steps", type=int, default=15)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--num-train", type=int, default=1024)
    parser.add_argument("--workers", type=int, default=1, help="loader workers (data.num_workers)")
    parser.add_argument("--checkpoint-every", type=int, default=0,
                        help="0 = the preset's (250: only the final one at 40 steps)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "benchmarks" / "train_throughput.json")
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()

    overrides = [
        f"world.num_train={args.num_train}", "world.num_val=2", "world.num_eval=2",
        f"world.shard_size={args.num_train // 4}",
        f"data.num_workers={args.workers}", f"train.batch_size={args.batch}", f"train.steps={args.steps}",
        "train.warmup_steps=5", "train.log_every=10",
    ] + ([f"train.checkpoint_every={args.checkpoint_every}"] if args.checkpoint_every > 0 else [])
    cfg = load_config(REPO / "config" / "config.yaml", "default", overrides).for_variant("groupvit_2stage", 0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "synthetic"
        t0 = time.perf_counter()
        generate_world(cfg.world, root, workers=0, progress=False)
        gen_s = time.perf_counter() - t0
        data = synthetic_train_data(cfg, root)
        batch = next(data.make_batches(start_step=0, batch_size=args.batch, rank=0, world_size=1, seed=0,
                                       tokenize=build_model(cfg.model).tokenizer))
        # bare steps before and after the engine run bracket any drift in the machine's load
        bare_before = bare_step_throughput(cfg, batch, args.bare_steps)
        summary = train(cfg, Path(tmp) / "run", variant="groupvit_2stage", data_dir=root)
        windows = [json.loads(line) for line in (Path(tmp) / "run" / "metrics.jsonl").read_text().splitlines()]
        bare_after = bare_step_throughput(cfg, batch, args.bare_steps)
    bare = (bare_before + bare_after) / 2
    loop_time = summary["train_time_s"]
    end_to_end = summary["samples_seen"] / loop_time
    # steady state: the log windows after the first (equal sample counts, so the harmonic mean of their rates)
    later = [w["samples_per_s"] for w in windows[1:]]
    steady = len(later) / sum(1 / r for r in later) if later else float("nan")
    result = {
        "benchmark": "train_throughput",
        "command": " ".join(["python benchmarks/train_throughput.py", *(argv if argv is not None else sys.argv[1:])]),
        "device": summary["device"],
        "cpu": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "model": {"image_size": cfg.model.image.image_size, "patch_size": cfg.model.image.patch_size,
                  "stem": cfg.model.image.stem, "embed_dim": cfg.model.image.embed_dim,
                  "depths": cfg.model.image.depths, "num_group_tokens": cfg.model.image.num_group_tokens,
                  "num_output_groups": cfg.model.image.num_output_groups, "text_layers": cfg.model.text.layers,
                  "text_width": cfg.model.text.width, "num_params": summary["num_params"]},
        "batch_size": args.batch,
        "steps": summary["steps"],
        "loader_workers": args.workers,
        "world_generation_s": round(gen_s, 2),
        "engine_samples_per_s": round(summary["samples_per_s"], 2),  # step time only (bookkeeping excluded)
        "engine_end_to_end_samples_per_s": round(end_to_end, 2),  # everything inside the loop
        "engine_steady_samples_per_s": round(steady, 2),  # step time after the first log window
        "data_wait_frac": round(summary["data_wait_frac"], 4),
        "loop_overhead_frac": round(summary["loop_overhead_frac"], 4),  # (data wait + logging + checkpoints) / loop
        "bare_step_samples_per_s": round(bare, 2),
        "bare_step_samples_per_s_before_after": [round(bare_before, 2), round(bare_after, 2)],
        "overhead_vs_bare_frac": round(1 - end_to_end / bare, 4),
        "steady_overhead_vs_bare_frac": round(1 - steady / bare, 4),
    }
    return write_record(result, args.out, load_before)


if __name__ == "__main__":
    main()
