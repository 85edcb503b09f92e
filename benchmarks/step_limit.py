"""A CPU training step against the machine's matrix-multiply limit: FLOPs, time, fraction of the sgemm rate, and where
the rest of the step goes.

    python benchmarks/step_limit.py [--configs default paper] [--steps 3] [--warmup 1] [--threads 1]
                                    [--note TEXT] [--out results/benchmarks/step_limit.json]

For each config, the step the trainer takes (fp32, forward with the loss's model_kwargs + loss + backward + gradient
clipping + fused AdamW step + zero_grad) on one batch from the real shard loader (the preset's augmentation, prompts
and tokenizer) over a small freshly synthesised world at the preset's image size:
  default: the `default` preset's groupvit_2stage model, its batch (64);
  paper:   the `paper` preset's model and loss at 224 px, batch 8 (what fits a CPU step of a few seconds).
Figures: FLOPs per step from torch.utils.flop_counter.FlopCounterMode over forward + loss + backward (matmuls,
convolutions, attention; the optimizer's elementwise work is not counted; torch's counter has no formula for the
CPU flash-attention kernels, so its attention formulas are registered for them), the median step time, and their
ratio as a fraction of the sgemm rate (a 1536 x 1536 fp32 matmul with the same thread count, measured before and
after the configs in the same process: the limit the step's matmuls can reach). A torch.profiler table of one step
by op (self CPU time, top 10) shows where the rest goes, with the share of the profiled step spent in the counted
ops (matmuls, convolutions, attention) and in everything else. Single torch thread by default (see model_step.py on
why).
The machine may be shared: the JSON records the load average at start and end, and --note says what else ran.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

CONFIGS = {"default": {"preset": "default", "batch": None}, "paper": {"preset": "paper", "batch": 8}}
SGEMM_N = 1536


def sgemm_rate(reps: int = 20) -> dict:
    """Median FLOP/s of an N x N fp32 matmul (2 N^3 FLOPs each)."""
    a, b = torch.randn(SGEMM_N, SGEMM_N), torch.randn(SGEMM_N, SGEMM_N)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    med = statistics.median(times)
    return {"n": SGEMM_N, "median_s": med, "gflops": 2 * SGEMM_N**3 / med / 1e9,
            "best_gflops": 2 * SGEMM_N**3 / min(times) / 1e9}


def one_batch(cfg, batch_size: int, root: Path) -> dict:
    from groupvit.data.shards import build_train_loader, list_shards
    from groupvit.data.world.config import WorldConfig
    from groupvit.data.world.generate import generate_world
    from groupvit.model import build_model

    size = cfg.model.image.image_size
    n = max(2 * batch_size, 32)
    generate_world(WorldConfig(num_train=n, num_val=2, num_eval=2, shard_size=n, image_size=size), root,
                   workers=1, progress=False)
    data = replace(cfg.data, num_workers=0, shuffle_buffer=n)
    loader = build_train_loader(data, list_shards(str(root / "train")), image_size=size, batch_size=batch_size,
                                tokenize=build_model(cfg.model).tokenizer, seed=0, epoch_samples=n)
    batch = next(iter(loader))
    return {k: batch[k] for k in ("image", "text", "prompts") if batch.get(k) is not None}


# the ops whose FLOPs the counter counts (matmuls, convolutions, attention): the rest of the step's time is overhead
COUNTED = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::convolution", "aten::mkldnn_convolution",
           "aten::convolution_backward", "aten::_scaled_dot_product")


def profile_table(step, top: int = 10) -> dict:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total_us = sum(e.self_cpu_time_total for e in events)
    counted = sum(e.self_cpu_time_total for e in events if e.key.startswith(COUNTED))
    return {"profiled_step_ms": round(total_us / 1e3, 1), "counted_ops_share": round(counted / total_us, 4),
            "other_ops_share": round(1 - counted / total_us, 4),
            "top10_self_cpu": [{"op": e.key, "self_cpu_ms": round(e.self_cpu_time_total / 1e3, 2), "calls": e.count,
                                "share_of_profiled_step": round(e.self_cpu_time_total / total_us, 4)}
                               for e in events[:top]]}


def count_cpu_attention() -> None:
    """Count the CPU flash-attention kernels with the formulas torch's counter uses for the GPU ones (the full
    query x key product: a masked attention computes it all)."""
    from torch.utils import flop_counter as fc

    aten = torch.ops.aten
    if aten._scaled_dot_product_flash_attention_for_cpu in fc.flop_registry:
        return

    @fc.register_flop_formula(aten._scaled_dot_product_flash_attention_for_cpu)
    def _forward(query, key, value, *args, out_shape=None, **kwargs) -> int:
        return fc.sdpa_flop_count(query, key, value)

    @fc.register_flop_formula(aten._scaled_dot_product_flash_attention_for_cpu_backward)
    def _backward(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
        return fc.sdpa_backward_flop_count(grad_out, query, key, value)


def measure(name: str, steps: int, warmup: int, root: Path) -> dict:
    from torch.utils.flop_counter import FlopCounterMode

    from groupvit.config import load_config
    from groupvit.model import GroupViTLoss, build_model
    from groupvit.train.optim import build_optimizer

    cfg = load_config(preset=CONFIGS[name]["preset"]).for_variant("groupvit_2stage", 0)
    batch_size = CONFIGS[name]["batch"] or cfg.train.batch_size
    inputs = one_batch(cfg, batch_size, root / name)
    torch.manual_seed(0)
    model = build_model(cfg.model).train()
    loss_fn = GroupViTLoss(cfg.train.loss)
    opt = build_optimizer(model, lr=1e-4, weight_decay=cfg.train.weight_decay,
                          no_decay_keywords=cfg.train.no_weight_decay_keywords)

    def forward_backward() -> None:
        loss_fn(**model(**inputs, **loss_fn.model_kwargs))["loss"].backward()

    def step() -> None:
        forward_backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.clip_grad, foreach=True)
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    count_cpu_attention()
    with FlopCounterMode(display=False) as counter:
        forward_backward()
    opt.zero_grad(set_to_none=True)
    by_op = {str(op): n for op, n in counter.get_flop_counts().get("Global", {}).items()}
    step_s = statistics.median(times)
    return {
        "preset": CONFIGS[name]["preset"], "variant": "groupvit_2stage", "batch": batch_size,
        "image_size": cfg.model.image.image_size, "text_encoder": cfg.model.text.kind,
        "params": sum(p.numel() for p in model.parameters()),
        "flops_per_step": counter.get_total_flops(),
        "flops_by_op": dict(sorted(by_op.items(), key=lambda kv: -kv[1])),
        "step_s_median": round(step_s, 4), "step_s_all": [round(t, 4) for t in times],
        "achieved_gflops": round(counter.get_total_flops() / step_s / 1e9, 2),
        "profile": profile_table(step),
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--note", default="", help="what else ran on the machine while measuring")
    ap.add_argument("--out", default="results/benchmarks/step_limit.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    record: dict = {
        "benchmark": "CPU training step vs the machine's sgemm rate (fp32)",
        "command": "python benchmarks/step_limit.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                    "torch_threads": torch.get_num_threads(),
                    "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                    "load_avg_1m_start": round(os.getloadavg()[0], 2), "note": args.note},
        "sgemm_before": sgemm_rate(), "configs": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.configs:
            row = measure(name, args.steps, args.warmup, Path(tmp))
            record["configs"][name] = row
            print(f"[{name}] {row['flops_per_step'] / 1e9:.1f} GFLOP/step, {row['step_s_median']:.3f} s, "
                  f"{row['achieved_gflops']:.1f} GFLOP/s", flush=True)
    record["sgemm_after"] = sgemm_rate()
    limit = (record["sgemm_before"]["gflops"] + record["sgemm_after"]["gflops"]) / 2
    record["sgemm_gflops_used"] = round(limit, 2)
    for row in record["configs"].values():
        row["fraction_of_sgemm"] = round(row["achieved_gflops"] / limit, 4)
    record["machine"]["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
    record["wall_s"] = round(time.perf_counter() - t0, 1)
    for name, row in record["configs"].items():
        print(f"[{name}] {row['fraction_of_sgemm']:.0%} of the sgemm rate ({limit:.1f} GFLOP/s)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out} ({record['wall_s']} s)")
    return record


if __name__ == "__main__":
    main()
