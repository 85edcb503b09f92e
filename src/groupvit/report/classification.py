"""`groupvit classification-table`: the study's zero-shot classification results (one JSON per trained model and
source, written by `groupvit classify`) as one table, beside the paper's ImageNet top-1 of ViT and GroupViT."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from groupvit.config import ExperimentConfig
from groupvit.report.tables import Table, fmt, paper_numbers

TABLE = "zero_shot_classification"


def load_classification(folder: Path) -> pd.DataFrame:
    """Every folder/<variant>/seed<N>/<source>.json as one row (accuracies in %)."""
    rows = []
    for path in sorted(Path(folder).glob("*/seed*/*.json")):
        record = json.loads(path.read_text())
        rows.append({
            "variant": path.parent.parent.name,
            "seed": int(path.parent.name.removeprefix("seed")),
            "source": path.stem,
            "top1": 100.0 * record["top1"],
            "top5": 100.0 * record["top5"],
            "num_images": record["num_images"],
            "classes": record.get("num_classes") or len(record.get("per_class_acc", {})),  # the candidate classes
        })
    return pd.DataFrame(rows, columns=["variant", "seed", "source", "top1", "top5", "num_images", "classes"])


def keep_study_runs(cfg: ExperimentConfig, frame: pd.DataFrame) -> pd.DataFrame:
    """Only the (variant, seed) runs the study trains: files left by an earlier config do not enter the table."""
    runs = {(name, seed) for name in cfg.study.variants for seed in cfg.seeds_of(name)}
    keep = [(v, int(s)) in runs for v, s in zip(frame["variant"], frame["seed"])]
    return frame[keep].reset_index(drop=True)


def classification_table(cfg: ExperimentConfig, frame: pd.DataFrame) -> Table:
    """One row per (variant, source): top-1 and top-5 (mean ± seed std), the chance level, and the paper's ImageNet
    top-1 of the same family (the main GroupViT and the ViT baseline; other variants have no published number)."""
    paper = paper_numbers()["zero_shot_classification"]
    by_family = {r["family"]: r["top1"] for r in paper["rows"]}
    rows = []
    for (variant, source), group in frame.groupby(["variant", "source"], sort=False):
        n = len(group)
        family = cfg.variants[variant].family
        published = by_family.get(family, "-") if variant == cfg.study.main_variant or family == "vit" else "-"
        rows.append({
            "variant": variant, "source": source, "seeds": n,
            "ours: top-1": fmt(group["top1"].mean(), group["top1"].std(), n),
            "ours: top-5": fmt(group["top5"].mean(), group["top5"].std(), n),
            "images": int(group["num_images"].iloc[0]),
            "chance top-1": fmt(100.0 / max(1, int(group["classes"].max())), 0.0, 1),
            "paper: ImageNet top-1": published,
        })
    released = paper["released"]
    note = (f"Preset `{cfg.preset}`. `synthetic` classifies the single-object crops of the world's eval split "
            "(foreground classes only); other sources are ImageNet-layout folders. Paper: " + paper["cite"] + "; "
            + "; ".join(f"{r['model']}: {r['top1']}" for r in paper["rows"]) + ". Released checkpoints ("
            + released["cite"] + "): " + "; ".join(f"{r['model']}: {r['top1']}" for r in released["rows"]) + ".")
    if cfg.data.source == "synthetic":
        note += (" This preset's world and classes are not ImageNet's: compare the orderings (GroupViT vs ViT), "
                 "not the levels.")
    return Table(TABLE, f"Zero-shot classification, preset `{cfg.preset}`", pd.DataFrame(rows), note)


def write_classification_table(cfg: ExperimentConfig, classification_dir: Path, tables_dir: Path) -> list[Path]:
    frame = keep_study_runs(cfg, load_classification(classification_dir))
    if frame.empty:
        raise FileNotFoundError(f"none of the results under {classification_dir}/<variant>/seed<N>/<source>.json "
                                "belong to this study's runs; `groupvit classify --out` writes them")
    table = classification_table(cfg, frame)
    table.write(tables_dir)
    return [tables_dir / f"{TABLE}.md", tables_dir / f"{TABLE}.csv"]
