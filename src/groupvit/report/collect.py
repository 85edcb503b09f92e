"""Gather a study's results into one tidy DataFrame: one row per (model, seed, dataset) with the attributes that
decide which paper table a model belongs to (stages, group tokens, assignment, multi-label loss, grouper)."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from groupvit.config import ExperimentConfig


def variant_attributes(cfg: ExperimentConfig, variant: str) -> dict:
    """What distinguishes a variant, read from its resolved config rather than from its name."""
    spec = cfg.variants[variant]
    resolved = cfg.for_variant(variant)
    image = resolved.model.image
    grouping = spec.family == "groupvit"
    return {
        "variant": variant,
        "family": spec.family,
        "description": spec.description,
        "stages": len(image.num_output_groups) if grouping else 0,
        "group_tokens": "/".join(str(n) for n in image.num_group_tokens if n) if grouping else "",
        "output_tokens": "/".join(str(n) for n in image.num_output_groups) if grouping else "",
        "assignment": ("hard" if image.hard_assignment else "soft") if grouping else "",
        "multi_label": resolved.train.loss.multi_label_weight > 0 and resolved.data.multi_label_nouns > 0,
        "text_encoder": resolved.model.text.kind,
    }


def load_metrics(metrics_dir: Path) -> pd.DataFrame:
    """Every metrics JSON under metrics_dir/<model>/seed<N>/<dataset>.json as one row (values in %)."""
    rows = []
    for path in sorted(Path(metrics_dir).glob("*/seed*/*.json")):
        record = json.loads(path.read_text())
        per_class = record.get("per_class_IoU", {})
        rows.append({
            "model": record["model"],
            "variant": record.get("variant") or record["model"],
            "grouper": record.get("grouper", "groupvit"),
            "seed": int(path.parent.name.removeprefix("seed")),
            "dataset": record["dataset"],
            "mIoU": _pct(record.get("mIoU")),
            "mIoU_ci95_low": _pct((record.get("mIoU_ci95") or [None, None])[0]),
            "mIoU_ci95_high": _pct((record.get("mIoU_ci95") or [None, None])[1]),
            "mIoU_foreground": _pct(record.get("mIoU_foreground")),
            "oracle_mIoU": _pct(record.get("oracle_mIoU")),
            "floor_mIoU": _pct(record.get("floor_mIoU")),
            "pixel_acc": _pct(record.get("aAcc")),
            "num_images": record.get("num_images"),
            **_final_stage_readout(record.get("readout_stats")),
            **{f"mIoU_top{k}": _pct(value) for k, value in (record.get("class_gate_mIoU") or {}).items()},
            **{f"IoU/{name}": _pct(value) for name, value in per_class.items()},
        })
    if not rows:
        raise FileNotFoundError(f"no metrics files under {metrics_dir}/<model>/seed<N>/<dataset>.json")
    return pd.DataFrame(rows)


def load_run_summaries(runs_dir: Path) -> pd.DataFrame:
    """The training side of each (variant, seed): steps, wall time, throughput, final losses."""
    rows = []
    for path in sorted(Path(runs_dir).glob("*/seed*/summary.json")):
        summary = json.loads(path.read_text())
        rows.append({
            "variant": summary.get("variant", path.parent.parent.name),
            "seed": int(summary.get("seed", path.parent.name.removeprefix("seed"))),
            "steps": summary.get("steps"),
            "samples_seen": summary.get("samples_seen"),
            "train_time_s": summary.get("train_time_s"),
            "samples_per_s": summary.get("samples_per_s"),
            "final_loss": summary.get("final_loss"),
            "budget_limited": summary.get("budget_limited"),
            "num_params": summary.get("num_params"),
            "git_commit": summary.get("git_commit"),
            "data_content_hash": summary.get("data_content_hash"),
        })
    return pd.DataFrame(rows)


def _final_stage_readout(stats: dict | None) -> dict:
    """The last grouping stage's groups and how many of them per image each readout's arg-max uses (GroupViT
    metrics only: the evaluation's readout_stats)."""
    if not stats or not stats.get("groups"):
        return {}
    used = stats["groups_per_image"]
    return {"final_groups": stats["groups"][-1], "final_groups_used_soft": used["soft"][-1],
            "final_groups_used_hard": used["hard"][-1], "final_soft_max_prob": stats["soft_max_prob"][-1]}


def _pct(value: float | None) -> float:
    return float("nan") if value is None else 100.0 * float(value)
