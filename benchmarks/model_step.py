"""Training-step time and peak memory of our GroupViT vs transformers' GroupViTModel, same architecture and batch.

Why: the reproduction must train on a CPU preset in hours, and it must not be slower than the port it is checked
against. One step = zero_grad + forward + symmetric contrastive loss + backward + AdamW step, on random images and
captions tokenized to the full 77-token context (how the data pipeline delivers them). Configurations:
- paper: the 2-stage GroupViT (224 px, patch 16, width 384, depths [6, 3, 3], groups [64, 8, 0] -> [64, 8], text
  width 256 x 12 layers, heads 4096 -> 256), batch 8;
- cpu_small: 64 px, patch 4 (linear), width 128, 4 heads, depths [2, 1, 1], groups [16, 8, 0] -> [16, 8], text width
  128 x 2 layers, batch 64.

Method: every measurement is a fresh subprocess (one model, `--warmup` untimed steps, `--steps` timed steps), so the
peak resident set size (getrusage ru_maxrss; a process-lifetime peak that includes allocator caching, i.e. what the OS
has to provide) belongs to that model alone; both kinds of worker import the same libraries. Also reported: the
peak minus the RSS just before the first step (activations, gradients and optimizer state, without the libraries).
Ours and HF alternate within each round (order flipped every round) and the figures are medians over rounds x
steps; the machine is shared and noisy, so medians, not means. Workers run with ONE torch thread by default: on
this 2-core machine shared with other jobs, two OpenMP threads make every parallel op wait at a barrier for a thread
the OS has descheduled, which measured 5-10x slower steps dominated by scheduling noise (an AdamW step over the
paper model's 55 M parameters: 0.19 s with 1 thread, 2.5 s with 2 while another process ran); `--threads 2` on an
idle machine measures both cores. Before timing, a check process loads the HF weights
into our model and records the largest difference of the eval-mode embeddings and logits ("equal outputs").

    python benchmarks/model_step.py [--configs paper cpu_small] [--rounds 3] [--steps 3] [--warmup 1]
                                    [--out results/benchmarks/model_step.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

CONFIGS: dict[str, dict] = {
    "paper": dict(
        batch=8,
        vision=dict(hidden_size=384, intermediate_size=1536, depths=[6, 3, 3], num_hidden_layers=12,
                    num_group_tokens=[64, 8, 0], num_output_groups=[64, 8, 8], num_attention_heads=6,
                    image_size=224, patch_size=16),
        text=dict(hidden_size=256, intermediate_size=1024, num_hidden_layers=12, num_attention_heads=4),
        projection_dim=256, projection_intermediate_dim=4096,
    ),
    "cpu_small": dict(
        batch=64,
        vision=dict(hidden_size=128, intermediate_size=512, depths=[2, 1, 1], num_hidden_layers=4,
                    num_group_tokens=[16, 8, 0], num_output_groups=[16, 8, 8], num_attention_heads=4,
                    image_size=64, patch_size=4),
        text=dict(hidden_size=128, intermediate_size=512, num_hidden_layers=2, num_attention_heads=2),
        projection_dim=256, projection_intermediate_dim=4096,
    ),
}
NOUNS = ["circle", "square", "star", "triangle", "heart", "ring", "cross", "moon"]
COLOURS = ["red", "blue", "green", "yellow", "purple", "orange"]


def hf_config(name: str):
    from transformers import GroupViTConfig

    c = CONFIGS[name]
    return GroupViTConfig(text_config=c["text"], vision_config=c["vision"], projection_dim=c["projection_dim"],
                          projection_intermediate_dim=c["projection_intermediate_dim"])


def our_config(name: str):
    import dataclasses

    from groupvit.model import model_config_from_hf

    cfg = model_config_from_hf(hf_config(name))
    # HF has no stochastic depth; everything else (hard assignment, Gumbel noise in training) is the same
    return dataclasses.replace(cfg, image=dataclasses.replace(cfg.image, drop_path_rate=0.0))


def batch(name: str, seed: int = 0):
    import torch

    from groupvit.model import ClipBpeTokenizer

    rng = random.Random(seed)
    n, side = CONFIGS[name]["batch"], CONFIGS[name]["vision"]["image_size"]
    captions = [
        " and ".join(f"a {rng.choice(COLOURS)} {rng.choice(NOUNS)}" for _ in range(rng.randint(1, 4)))
        + rng.choice(["", " on a striped background", " next to each other"])
        for _ in range(n)
    ]
    torch.manual_seed(seed)
    return torch.randn(n, 3, side, side), ClipBpeTokenizer(77)(captions)


def build(impl: str, name: str):
    import torch

    torch.manual_seed(0)
    if impl == "hf":
        from transformers import GroupViTModel

        return GroupViTModel(hf_config(name))
    from groupvit.model import build_model

    return build_model(our_config(name))


def step_fn(impl: str, model, images, tokens):
    """A closure computing the same symmetric contrastive loss through either model."""
    if impl == "hf":
        def loss():
            return model(input_ids=tokens, pixel_values=images, return_loss=True).loss
    else:
        from groupvit.model import GroupViTLoss

        criterion = GroupViTLoss()

        def loss():
            return criterion(**model(images, tokens))["loss"]
    return loss


def current_rss_kb() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def worker(impl: str, name: str, warmup: int, steps: int) -> dict:
    """One fresh process: build, warm up, time `steps` optimiser steps."""
    import torch

    import transformers  # noqa: F401  (both kinds import the same libraries)
    import groupvit.model  # noqa: F401

    model = build(impl, name).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
    images, tokens = batch(name)
    loss_fn = step_fn(impl, model, images, tokens)
    rss_before = current_rss_kb()
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        optimizer.step()
        elapsed = time.perf_counter() - start
        if i >= warmup:
            times.append(elapsed)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"times_s": times, "peak_rss_mb": peak_kb / 1024, "rss_before_steps_mb": rss_before / 1024,
            "loss": float(loss)}


def check(name: str) -> dict:
    """HF weights in our model: the eval-mode outputs must agree."""
    import torch

    from groupvit.model import checkpoint_filter_fn

    hf = build("hf", name).eval()
    with torch.no_grad():  # HF leaves group tokens at zero: give them the official trunc-normal(.02) init, else the
        for key, param in hf.named_parameters():  # hard argmax of near-tied groups flips on rounding differences
            if key.endswith("group_token"):
                param.normal_(0, 0.02)
    ours = build("ours", name).eval()
    ours.load_state_dict(checkpoint_filter_fn(hf.state_dict(), ours))
    images, tokens = batch(name)
    images, tokens = images[:4], tokens[:4]
    with torch.no_grad():
        ref = hf(input_ids=tokens, pixel_values=images)
        out = ours(images, tokens)
    logits = out["logit_scale"] * out["image_embed"] @ out["text_embed"].t()
    return {
        "max_abs_diff_image_embed": float((out["image_embed"] - ref.image_embeds).abs().max()),
        "max_abs_diff_text_embed": float((out["text_embed"] - ref.text_embeds).abs().max()),
        "max_abs_diff_logits": float((logits - ref.logits_per_image).abs().max()),
    }


def run_child(args: list[str], threads: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    proc = subprocess.run([sys.executable, __file__, *args, "--threads", str(threads)], capture_output=True,
                          text=True, check=False, env=env)
    if proc.returncode:
        raise RuntimeError(f"worker {args} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per worker (default 1: see the module docstring)")
    parser.add_argument("--out", type=Path, default=Path("results/benchmarks/model_step.json"))
    parser.add_argument("--worker", nargs=2, metavar=("IMPL", "CONFIG"), help=argparse.SUPPRESS)
    parser.add_argument("--check", metavar="CONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker or args.check:
        import torch

        torch.set_num_threads(args.threads)
    if args.worker:
        print(json.dumps(worker(args.worker[0], args.worker[1], args.warmup, args.steps)))
        return 0
    if args.check:
        print(json.dumps(check(args.check)))
        return 0

    import torch

    report: dict = {
        "what": "forward + contrastive loss + backward + AdamW step; ours vs transformers GroupViTModel",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": args.threads,
                    "torch": torch.__version__,
                    "note": "2-core CPU shared with other jobs while measured (noisy): medians over rounds x steps"},
        "memory_method": "ru_maxrss of a fresh subprocess per measurement (process-lifetime peak RSS)",
        "protocol": {"rounds": args.rounds, "timed_steps_per_round": args.steps, "warmup_steps": args.warmup},
        "command": "python benchmarks/model_step.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "configs": {},
    }
    for name in args.configs:
        print(f"[{name}] checking outputs ...", file=sys.stderr, flush=True)
        equal = run_child(["--check", name], args.threads)
        result: dict = {"batch": CONFIGS[name]["batch"], "equal_outputs": equal, "runs": {}}
        runs: dict[str, list[dict]] = {"ours": [], "hf": []}
        for r in range(args.rounds):
            for impl in (("ours", "hf") if r % 2 == 0 else ("hf", "ours")):
                res = run_child(["--worker", impl, name, "--steps", str(args.steps), "--warmup", str(args.warmup)],
                                args.threads)
                runs[impl].append(res)
                print(f"[{name}] round {r} {impl}: {['%.2f' % t for t in res['times_s']]} s, "
                      f"peak {res['peak_rss_mb']:.0f} MB", file=sys.stderr, flush=True)
        for impl, items in runs.items():
            times = [t for item in items for t in item["times_s"]]
            result["runs"][impl] = {
                "median_step_s": statistics.median(times),
                "min_step_s": min(times),
                "all_step_s": [round(t, 4) for t in times],
                "median_peak_rss_mb": statistics.median(i["peak_rss_mb"] for i in items),
                "median_step_peak_over_baseline_mb": statistics.median(
                    i["peak_rss_mb"] - i["rss_before_steps_mb"] for i in items),
            }
        ours, hf = result["runs"]["ours"], result["runs"]["hf"]
        result["speedup"] = hf["median_step_s"] / ours["median_step_s"]
        result["peak_rss_ratio_ours_over_hf"] = ours["median_peak_rss_mb"] / hf["median_peak_rss_mb"]
        report["configs"][name] = result
        print(f"[{name}] ours {ours['median_step_s']:.3f} s/step, HF {hf['median_step_s']:.3f} s/step -> "
              f"speedup {result['speedup']:.2f}x; peak RSS ours {ours['median_peak_rss_mb']:.0f} MB, "
              f"HF {hf['median_peak_rss_mb']:.0f} MB", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
