"""Evaluation speed: zero-shot segmentation images/s and the clustering baselines' time per image.

Why: the workflow evaluates every variant x seed x dataset, so evaluation time is part of the study's budget, and
the paper-scale protocol (short side 448, sliding 448/224 windows) must be feasible where the real datasets are.
Models are randomly initialised (speed does not depend on the weights, except mean-shift's iteration count):
- small: the `default` preset's GroupViT (64 px, whole-image inference, its eval settings), random 64 px images;
- paper: the paper's 2-stage GroupViT with the paper protocol on VOC-sized images (375 x 500 -> 448 x 597,
  two 448 windows each);
- baselines: the plain ViT of the same two configs grouped by pixel-wise / K-means / mean-shift / spectral
  clustering, seconds per image (forward + clustering + naming).
Prints a table and writes results/benchmarks/eval.json.

    python benchmarks/bench_eval.py [--small-images 64] [--paper-images 3] [--baseline-images 8]
                                    [--baseline-paper-images 2] [--skip-paper] [--out results/benchmarks/eval.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from groupvit.config.experiment import load_config
from groupvit.evaluation.baselines import METHODS, ClusterGrouper
from groupvit.evaluation.config import EvalConfig
from groupvit.evaluation.segmenter import ZeroShotSegmenter
from groupvit.model import ModelConfig, build_model


def images(n: int, h: int, w: int, seed: int = 0) -> list[np.ndarray]:
    """Blocky random images (piecewise-constant colour regions, so clustering has structure to find)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        coarse = rng.integers(0, 255, (max(1, h // 32), max(1, w // 32), 3), dtype=np.uint8)
        big = np.kron(coarse, np.ones((32, 32, 1), np.uint8))[:h, :w]
        big = np.pad(big, ((0, h - big.shape[0]), (0, w - big.shape[1]), (0, 0)), mode="edge")
        out.append(np.clip(big + rng.normal(0, 8, big.shape), 0, 255).astype(np.uint8))
    return out


def time_segmenter(seg: ZeroShotSegmenter, imgs: list[np.ndarray], per_step: int) -> dict:
    seg.predict(imgs[:1])  # warm-up (allocations, lazy init)
    start = time.perf_counter()
    for i in range(0, len(imgs), per_step):
        seg.predict(imgs[i:i + per_step])
    elapsed = time.perf_counter() - start
    return {"images": len(imgs), "seconds": round(elapsed, 3), "images_per_s": round(len(imgs) / elapsed, 3),
            "s_per_image": round(elapsed / len(imgs), 4)}


def windows_per_image(seg: ZeroShotSegmenter, img: np.ndarray) -> int:
    x, _ = seg.prepare(img)
    return len(seg.windows_of(*x.shape[-2:]))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small-images", type=int, default=64)
    ap.add_argument("--paper-images", type=int, default=3)
    ap.add_argument("--baseline-images", type=int, default=8)
    ap.add_argument("--baseline-paper-images", type=int, default=2)
    ap.add_argument("--skip-paper", action="store_true")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", default="results/benchmarks/eval.json")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    device = torch.device(args.device)
    results: list[dict] = []

    def report(row: dict) -> None:
        results.append(row)
        print(f"{row['name']:<34} {row['images']:>4} img  {row['images_per_s']:>8.3f} img/s  "
              f"{row['s_per_image']:>8.4f} s/img  ({row.get('note', '')})", flush=True)

    # ---- small CPU config (default preset)
    exp = load_config(preset="default")
    norm = {"mean": exp.data.augment.mean, "std": exp.data.augment.std}
    size = exp.model.image.image_size
    small = build_model(exp.model).to(device).eval()
    names = list(exp.world.classes)
    small_imgs = images(args.small_images, size, size)
    seg = ZeroShotSegmenter(small, names, exp.eval, dataset="synthetic", **norm)
    row = time_segmenter(seg, small_imgs, exp.eval.batch_size)
    report({"name": "groupvit_default_preset", "image_size": size, "mode": exp.eval.mode,
            "batch_size": exp.eval.batch_size, "windows_per_image": windows_per_image(seg, small_imgs[0]),
            "note": f"{exp.eval.mode}, {size}px", **row})

    small_vit = build_model(replace(exp.model, image=replace(exp.model.image, grouping=False))).to(device).eval()
    base_cfg = replace(exp.eval, kmeans_k=EvalConfig.kmeans_k, spectral_k=EvalConfig.spectral_k)
    for method in METHODS:
        seg = ZeroShotSegmenter(small_vit, names, base_cfg, grouper=ClusterGrouper(small_vit, method, base_cfg),
                                dataset="synthetic", **norm)
        row = time_segmenter(seg, small_imgs[: args.baseline_images], base_cfg.batch_size)
        report({"name": f"vit_{method}_default_preset", "image_size": size, "mode": base_cfg.mode,
                "tokens": (size // exp.model.image.patch_size) ** 2, "note": f"{method}, {size}px", **row})

    # ---- the paper's model and protocol on VOC-sized images
    if not args.skip_paper:
        paper_cfg = EvalConfig()
        voc_imgs = images(max(args.paper_images, args.baseline_paper_images), 375, 500, seed=1)
        paper = build_model(ModelConfig()).to(device).eval()
        seg = ZeroShotSegmenter(paper, ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
                                        "chair", "cow", "table", "dog", "horse", "motorbike", "person", "plant",
                                        "sheep", "sofa", "train", "monitor"], paper_cfg, dataset="voc")
        row = time_segmenter(seg, voc_imgs[: args.paper_images], 1)
        report({"name": "groupvit_paper_448_slide", "image_size": [375, 500], "resized": [448, 597],
                "mode": "slide", "window": paper_cfg.window, "stride": paper_cfg.stride,
                "windows_per_image": windows_per_image(seg, voc_imgs[0]), "note": "paper model, 448/224 slide",
                **row})
        del paper
        vit = build_model(replace(ModelConfig(), image=replace(ModelConfig().image, grouping=False))).to(device)
        vit.eval()
        for method in METHODS:
            seg = ZeroShotSegmenter(vit, seg.class_names, paper_cfg, dataset="voc",
                                    grouper=ClusterGrouper(vit, method, paper_cfg))
            row = time_segmenter(seg, voc_imgs[: args.baseline_paper_images], 1)
            report({"name": f"vit_{method}_paper_448_slide", "image_size": [375, 500], "mode": "slide",
                    "tokens_per_window": (448 // 16) ** 2, "note": f"{method}, ViT-S/16 448 slide", **row})

    record = {
        "benchmark": "zero-shot segmentation evaluation speed (random weights)",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
                    "torch_threads": torch.get_num_threads(), "device": str(device),
                    "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
                    "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None},
        "results": results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")
    return record


if __name__ == "__main__":
    main()
