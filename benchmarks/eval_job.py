"""Where one default-study evaluation job spends its time, and what its oracle pass costs one image at a time
against batched with the scoring pass's clusters reused.

    python benchmarks/eval_job.py [--images 200] [--rounds 2] [--threads 1]

On trained checkpoints of the default study (runs/default/<variant>/seed0/model.pt) and the default world's eval
split, each pass of `groupvit evaluate` timed on its own: the scoring pass (predictions), the group-oracle pass two
ways, side by side and alternating within each round, the top-1 / top-2 class gates and (GroupViT) the readout
statistics:
  oracle_per_image: one whole-image forward pass per image, clusters computed afresh (how the oracle pass ran
                    before it was batched);
  oracle_batched:   eval.batch_size images per forward pass, a clustering baseline reusing the clusters the
                    scoring pass computed for the same tokens (the evaluation job's path).
Writes results/benchmarks/eval_job.json.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from groupvit.config import load_config
from groupvit.evaluation import ClusterGrouper, ZeroShotSegmenter, evaluate_segmentation, load_eval_dataset
from groupvit.evaluation.readout_stats import readout_stats
from groupvit.evaluation.split_score import gated_mious
from groupvit.model import load_model

from bench_record import write_record  # beside this script

REPO = Path(__file__).resolve().parents[1]
MODELS = [("groupvit_2stage", "groupvit"), ("vit_baselines", "kmeans"), ("vit_baselines", "spectral")]


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def one_round(model, cfg, dataset, grouper: str, n: int, order: list[str]) -> dict[str, float]:
    def segmenter() -> ZeroShotSegmenter:
        cluster = None if grouper == "groupvit" else ClusterGrouper(model, grouper, cfg.eval)
        return ZeroShotSegmenter(model, dataset.class_names, cfg.eval, dataset="synthetic", grouper=cluster,
                                 mean=cfg.data.augment.mean, std=cfg.data.augment.std)

    images = [dataset[i].image for i in range(n)]
    batch = cfg.eval.batch_size
    seg = segmenter()
    out = {"scoring": timed(lambda: evaluate_segmentation(seg, dataset, max_images=n))}
    arms = {
        "oracle_per_image": lambda: [fresh.group_maps(im) for fresh in [segmenter()] for im in images],
        "oracle_batched": lambda: [seg.group_maps_batch(images[i:i + batch]) for i in range(0, n, batch)],
    }
    for name in order:
        out[name] = timed(arms[name])
    out["class_gates"] = timed(lambda: gated_mious(seg, dataset, max_images=n))
    if grouper == "groupvit":
        out["readout_stats"] = timed(lambda: readout_stats(seg, dataset, max_images=n))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPO / "results/benchmarks/eval_job.json")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    torch.set_num_threads(args.threads)
    cfg = load_config(REPO / "config/config.yaml", preset="default")
    # the world writes each split in the VOC layout, whose image list is named val.txt
    dataset = load_eval_dataset("synthetic", REPO / "data/default/synthetic/eval", split="val")
    n = min(args.images, len(dataset))
    results = []
    for variant, grouper in MODELS:
        model = load_model(REPO / f"runs/default/{variant}/seed0/model.pt")
        rounds = []
        for r in range(args.rounds):
            order = ["oracle_per_image", "oracle_batched"][:: 1 if r % 2 == 0 else -1]
            rounds.append(one_round(model, cfg, dataset, grouper, n, order))
        median = {k: round(statistics.median(r[k] for r in rounds), 3) for k in rounds[0]}
        row = {"model": f"{variant}/{grouper}", "images": n, "median_s": median,
               "oracle_speedup": round(median["oracle_per_image"] / median["oracle_batched"], 2)}
        results.append(row)
        print(f"{row['model']:<26} " + "  ".join(f"{k} {v:.2f} s" for k, v in median.items())
              + f"  (oracle {row['oracle_speedup']:.1f}x faster batched)", flush=True)
    write_record({
        "benchmark": "one default-study evaluation job, pass by pass; the oracle pass per image vs batched",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
                    "torch_threads": torch.get_num_threads()},
        "rounds": args.rounds, "results": results,
    }, args.out, load_before)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
