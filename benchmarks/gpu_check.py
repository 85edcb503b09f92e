"""GPU readiness check: what one GPU does with the paper model, its loader, its evaluation and the default study.

    python benchmarks/gpu_check.py [--out results/benchmarks/gpu.json] [--budget-s 480]
    python benchmarks/gpu_check.py --tiny --out /tmp/gpu_tiny.json      # tiny models on the CPU, seconds

Sections (each records its own wall time; a section that would overrun --budget-s is recorded as skipped):
  train_step: the paper's 2-stage GroupViT (224 px, `paper` preset's model and loss) trained under bf16 autocast
      with fused AdamW on batches from the real loader: samples/s, FLOPs per step (torch's flop counter: forward +
      loss + backward), MFU = FLOPs / step time / the card's dense bf16 peak, peak GPU memory; once eager and once
      under torch.compile (compile time reported apart from the timed steps);
  loader: the shard loader at 224 px with the paper's augmentation (random resized crop 0.08-1, flip, RandAugment,
      random erasing 0.25) and the paper's prompt templates over a freshly synthesised world: samples/s with 1 and
      with several workers, samples/s per worker, and how many workers keep up with the eager or compiled step;
  eval: zero-shot segmentation with the paper protocol (short side 448, sliding 448 windows at stride 224) on
      VOC-sized 375 x 500 images: images/s;
  default_train: a short `groupvit train` of the default preset's main model on a small default world: samples/s
      and the run's data-wait fraction as its summary reports them.
MFU needs the card's peak: known for H100/H200/A100 by name, else pass --peak-tflops. Random weights throughout
(speed does not depend on them). --tiny shrinks every model and image so the same code runs on a CPU in seconds
(torch.compile then uses the `eager` backend: graph capture only); its figures mean nothing.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

# dense (no sparsity) bf16 tensor-core peaks, TFLOP/s, from the vendors' data sheets
BF16_PEAK_TFLOPS = {"H100 PCIe": 756.0, "H100 NVL": 835.0, "H100": 989.4, "H200": 989.4, "A100": 312.0}
TINY_MODEL = [
    "model.image.image_size=32", "model.image.patch_size=8", "model.image.embed_dim=32", "model.image.num_heads=2",
    "model.image.depths=[1,1,1]", "model.image.num_group_tokens=[4,2,0]", "model.image.num_output_groups=[4,2]",
    "model.text.width=32", "model.text.layers=1", "model.text.heads=2", "model.text.context_length=16",
    "model.proj_dim=32", "model.proj_hidden=64",
]
TINY_DEFAULT = [
    "world.num_train=64", "world.num_val=2", "world.num_eval=2", "world.shard_size=32",
    "model.image.image_size=32", "model.image.embed_dim=32", "model.image.num_heads=2", "model.image.depths=[1,1,1]",
    "model.image.num_group_tokens=[4,2,0]", "model.image.num_output_groups=[4,2]", "model.image.stem_channels=[8,16]",
    "model.text.width=32", "model.text.layers=1", "model.text.heads=2", "model.text.context_length=16",
    "model.proj_dim=32", "model.proj_hidden=64",
    "train.batch_size=8", "train.steps=3", "train.warmup_steps=1", "train.checkpoint_every=100", "train.log_every=1",
    "data.num_workers=0", "data.shuffle_buffer=16",
]


def bf16_peak(device: torch.device, override: float | None) -> tuple[float | None, str]:
    if override:
        return override * 1e12, f"--peak-tflops {override}"
    if device.type != "cuda":
        return None, "no GPU: MFU not computed"
    name = torch.cuda.get_device_name(device)
    for key, tflops in BF16_PEAK_TFLOPS.items():  # most specific names first
        if key in name:
            return tflops * 1e12, f"{name}: {tflops} TFLOP/s dense bf16 (data sheet)"
    return None, f"{name}: peak unknown, pass --peak-tflops"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_world(root: Path, *, samples: int, size: int, workers: int) -> Path:
    from groupvit.data.world.config import WorldConfig
    from groupvit.data.world.generate import generate_world

    shard = max(8, samples // 16)
    generate_world(WorldConfig(num_train=samples, num_val=2, num_eval=2, shard_size=shard, image_size=size), root,
                   workers=workers, progress=False)
    return root


def paper_config(tiny: bool):
    from groupvit.config import load_config

    return load_config(preset="paper", overrides=TINY_MODEL if tiny else [])


def loader_for(cfg, shards: list[str], *, workers: int, batch: int, tokenize, samples: int):
    from groupvit.data.shards import build_train_loader

    data = replace(cfg.data, num_workers=workers, shuffle_buffer=min(cfg.data.shuffle_buffer, samples))
    return build_train_loader(data, shards, image_size=cfg.model.image.image_size, batch_size=batch,
                              tokenize=tokenize, seed=0, epoch_samples=samples)


def time_loader(cfg, shards, *, workers: int, batch: int, batches: int, tokenize, samples: int) -> dict:
    stream = iter(loader_for(cfg, shards, workers=workers, batch=batch, tokenize=tokenize, samples=samples))
    start = time.perf_counter()
    next(stream)  # worker start-up and shuffle-buffer fill
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(batches):
        next(stream)
    elapsed = time.perf_counter() - start
    del stream
    rate = batches * batch / elapsed
    return {"num_workers": workers, "batch": batch, "batches": batches, "first_batch_s": round(first, 3),
            "samples_per_s": round(rate, 1), "samples_per_s_per_worker": round(rate / max(1, workers), 1)}


def inputs_on(batch: dict, device: torch.device) -> dict:
    return {k: batch[k].to(device, non_blocking=True) for k in ("image", "text", "prompts") if k in batch}


def train_step_run(cfg, batch: dict, device: torch.device, *, compiled: bool, steps: int, warmup: int,
                   tiny: bool, peak: float | None) -> dict:
    from torch.utils.flop_counter import FlopCounterMode

    from groupvit.model import GroupViTLoss, build_model
    from groupvit.train.optim import build_optimizer

    torch.manual_seed(0)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    model = build_model(cfg.model).to(device).train()
    loss_fn = GroupViTLoss(cfg.train.loss).to(device)
    opt = build_optimizer(model, lr=1e-4, weight_decay=0.05, no_decay_keywords=cfg.train.no_weight_decay_keywords)
    forward = torch.compile(model, backend="eager" if tiny else "inductor") if compiled else model
    inputs = inputs_on(batch, device)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            losses = loss_fn(**forward(**inputs, **loss_fn.model_kwargs))
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.clip_grad, foreach=True)
        opt.step()
        opt.zero_grad(set_to_none=True)

    start = time.perf_counter()
    for _ in range(warmup):
        step()
    sync(device)
    warmup_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    step_s = (time.perf_counter() - start) / steps
    with FlopCounterMode(display=False) as counter:  # eager forward + loss + backward, the work of one step
        with torch.autocast(device.type, dtype=torch.bfloat16):
            losses = loss_fn(**model(**inputs, **loss_fn.model_kwargs))
        losses["loss"].backward()
    opt.zero_grad(set_to_none=True)
    flops = counter.get_total_flops()
    n = inputs["image"].shape[0]
    row = {"compile": compiled, "batch": n, "timed_steps": steps, "warmup_steps": warmup,
           "warmup_s" if not compiled else "compile_and_warmup_s": round(warmup_s, 2),
           "step_s": round(step_s, 4), "samples_per_s": round(n / step_s, 1), "flops_per_step": flops,
           "achieved_tflops": round(flops / step_s / 1e12, 3),
           "mfu": round(flops / step_s / peak, 4) if peak else None}
    if device.type == "cuda":
        row["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    return row


def voc_like_images(n: int, h: int, w: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def eval_run(cfg, device: torch.device, *, images: int, tiny: bool) -> dict:
    from groupvit.evaluation.config import EvalConfig
    from groupvit.evaluation.segmenter import ZeroShotSegmenter
    from groupvit.model import build_model

    torch.manual_seed(0)
    model = build_model(cfg.model).to(device).eval()
    ecfg = EvalConfig()
    size = (48, 64) if tiny else (375, 500)
    if tiny:
        ecfg = replace(ecfg, resize_short=64, window=32, stride=16)
    names = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "table", "dog",
             "horse", "motorbike", "person", "plant", "sheep", "sofa", "train", "monitor"]
    seg = ZeroShotSegmenter(model, names, ecfg, dataset="voc")
    imgs = voc_like_images(images + 1, *size)
    seg.predict(imgs[:1])  # warm-up
    sync(device)
    start = time.perf_counter()
    for img in imgs[1:]:
        seg.predict([img])
    sync(device)
    elapsed = time.perf_counter() - start
    x, _ = seg.prepare(imgs[0])
    return {"image_size": list(size), "resize_short": ecfg.resize_short, "window": ecfg.window,
            "stride": ecfg.stride, "windows_per_image": len(seg.windows_of(*x.shape[-2:])), "images": images,
            "images_per_s": round(images / elapsed, 3)}


def default_train_run(root: Path, *, tiny: bool, steps: int, workers: int) -> dict:
    from groupvit.config import load_config
    from groupvit.data.world.generate import generate_world
    from groupvit.train.runner import run_training

    overrides = TINY_DEFAULT if tiny else [
        "world.num_train=4096", "world.num_val=8", "world.num_eval=8", "world.shard_size=256",
        f"train.steps={steps}", f"data.num_workers={workers}", "train.checkpoint_every=100000",
        f"train.log_every={max(1, steps // 5)}"]
    cfg = load_config(preset="smoke" if tiny else "default", overrides=overrides)
    start = time.perf_counter()
    generate_world(cfg.world, root / "world", workers=max(1, os.cpu_count() or 1), progress=False)
    synth_s = time.perf_counter() - start
    start = time.perf_counter()
    summary = run_training(cfg, "groupvit_2stage", 0, root / "run", data_dir=root / "world")
    return {"preset": "smoke (tiny overrides)" if tiny else "default", "overrides": overrides,
            "world_synth_s": round(synth_s, 1), "wall_s": round(time.perf_counter() - start, 1),
            "steps": summary.get("steps"), "global_batch": summary.get("global_batch"),
            "samples_per_s": summary.get("samples_per_s"), "data_wait_frac": summary.get("data_wait_frac"),
            "device": summary.get("device")}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="tiny models on the CPU (for the tests); numbers mean nothing")
    ap.add_argument("--device", default=None, help="default: cuda when available (cpu with --tiny)")
    ap.add_argument("--batch", type=int, default=None, help="paper-model training batch (default 128; 4 tiny)")
    ap.add_argument("--steps", type=int, default=None, help="timed training steps (default 20; 1 tiny)")
    ap.add_argument("--loader-workers", type=int, default=None,
                    help="the larger worker count timed (default min(8, CPUs - 1); 0 tiny)")
    ap.add_argument("--peak-tflops", type=float, default=None, help="the card's dense bf16 peak, if not known")
    ap.add_argument("--budget-s", type=float, default=480.0, help="skip sections that would start past this")
    ap.add_argument("--out", default="results/benchmarks/gpu.json")
    args = ap.parse_args(argv)
    tiny = args.tiny
    device = torch.device(args.device or ("cpu" if tiny or not torch.cuda.is_available() else "cuda"))
    batch = args.batch or (4 if tiny else 128)
    steps = args.steps or (1 if tiny else 20)
    cpus = os.cpu_count() or 1
    many = args.loader_workers if args.loader_workers is not None else (0 if tiny else max(1, min(8, cpus - 1)))
    peak, peak_source = bf16_peak(device, args.peak_tflops)
    t0 = time.perf_counter()
    record: dict = {
        "benchmark": "GPU readiness: paper-model bf16 step (eager, compiled), loader at 224 px, 448 px slide "
                     "evaluation, short default-world training",
        "command": "python benchmarks/gpu_check.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "tiny": tiny,
        "machine": {"platform": platform.platform(), "cpus": cpus, "torch": torch.__version__,
                    "device": str(device),
                    "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
                    "bf16_peak": peak_source},
        "sections": {},
    }
    if device.type == "cpu" and not tiny:
        record["machine"]["note"] = "no GPU found: these are CPU figures"

    def remaining() -> float:
        return args.budget_s - (time.perf_counter() - t0)

    def section(name: str, need_s: float, fn) -> None:
        if remaining() < need_s:
            record["sections"][name] = {"skipped": f"less than {need_s:.0f} s of the {args.budget_s:.0f} s budget left"}
            print(f"[{name}] skipped (budget)", flush=True)
            return
        start = time.perf_counter()
        result = fn()
        result["section_s"] = round(time.perf_counter() - start, 1)
        record["sections"][name] = result
        print(f"[{name}] {json.dumps(result)}", flush=True)

    cfg = paper_config(tiny)
    from groupvit.model import build_model

    tokenize = build_model(cfg.model).tokenizer
    with tempfile.TemporaryDirectory() as tmp:
        samples = 64 if tiny else 4096
        world = make_world(Path(tmp) / "world224", samples=samples, size=cfg.model.image.image_size,
                           workers=max(1, cpus))
        from groupvit.data.shards import list_shards

        shards = list_shards(str(world / "train"))
        first = next(iter(loader_for(cfg, shards, workers=0, batch=batch, tokenize=tokenize, samples=samples)))

        def loader() -> dict:
            # workers=0 reads in this process (tiny); otherwise 1 worker (the per-worker rate) and several
            counts = [0] if tiny else sorted({1, max(1, many)})
            rows = [time_loader(cfg, shards, workers=w, batch=min(batch, 64), batches=3 if tiny else 12,
                                tokenize=tokenize, samples=samples) for w in counts]
            return {"augment": str(cfg.data.augment), "prompt_templates": cfg.data.prompt_templates, "runs": rows,
                    "samples_per_s_per_worker": rows[0]["samples_per_s"]}

        section("loader", 60, loader)
        section("train_step_eager", 60, lambda: train_step_run(cfg, first, device, compiled=False, steps=steps,
                                                                 warmup=1 if tiny else 2, tiny=tiny, peak=peak))
        section("train_step_compiled", 240, lambda: train_step_run(cfg, first, device, compiled=True, steps=steps,
                                                                     warmup=1 if tiny else 3, tiny=tiny, peak=peak))
        per_worker = record["sections"].get("loader", {}).get("samples_per_s_per_worker")
        for name in ("train_step_eager", "train_step_compiled"):
            row = record["sections"].get(name, {})
            if per_worker and "samples_per_s" in row:
                row["loader_workers_needed"] = math.ceil(row["samples_per_s"] / per_worker)
        section("eval_448_slide", 45, lambda: eval_run(cfg, device, images=2 if tiny else 8, tiny=tiny))
        section("default_train", 60, lambda: default_train_run(Path(tmp), tiny=tiny, steps=300,
                                                                workers=max(1, min(4, cpus - 1))))
    record["total_s"] = round(time.perf_counter() - t0, 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2, default=str) + "\n")
    print(f"wrote {out} ({record['total_s']} s)")
    return record


if __name__ == "__main__":
    main()
