"""`groupvit tables`: a study's metrics and run summaries -> results/<preset>/ tables, checks, DVC metrics and
training curves (small files, committed for the default preset so the front page shows current results)."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from groupvit.config import ExperimentConfig
from groupvit.atomic import atomic_write_text
from groupvit.evaluation.readout import official_readout_model
from groupvit.report.checks import checks_markdown, checks_records, reproduction_checks
from groupvit.report.collect import load_metrics, load_run_summaries, variant_attributes
from groupvit.report.tables import ABLATION_TABLES, ablation_table, baselines_table, main_table, per_class_table


def training_curves(runs_dir: Path) -> pd.DataFrame:
    """Every run's metrics.jsonl as one long table (variant, seed, step, losses, lr, throughput)."""
    frames = []
    for path in sorted(Path(runs_dir).glob("*/seed*/metrics.jsonl")):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if rows:
            frame = pd.DataFrame(rows)
            seed, variant = int(path.parent.name.removeprefix("seed")), path.parent.parent.name
            frame.insert(0, "seed", seed)
            frame.insert(0, "variant", variant)
            frame.insert(0, "run", f"{variant}/seed{seed}")  # one series per run in `dvc plots show`
            frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def study_scope(cfg: ExperimentConfig) -> tuple[set[tuple[str, int]], set[str]]:
    """The (variant, seed) runs and the scored model names the study's config asks for."""
    runs = {(name, seed) for name in cfg.study.variants for seed in cfg.seeds_of(name)}
    models = set()
    for name in cfg.study.variants:
        spec = cfg.variants[name]
        scored_once = spec.family in ("groupvit", "supervised")  # a ViT once per grouper
        models |= {name} if scored_once else {f"{name}_{grouper}" for grouper in spec.groupers}
    models |= {official_readout_model(cfg)} - {None}  # the main variant read out as published
    return runs, models


def keep_study_rows(cfg: ExperimentConfig, frame: pd.DataFrame) -> pd.DataFrame:
    """Only the rows of runs (and scored models, datasets) the study asks for: files left on disk by an earlier
    config (a dropped seed or variant) must not enter its tables."""
    if frame.empty:
        return frame
    runs, models = study_scope(cfg)
    keep = pd.Series([(v, int(s)) in runs for v, s in zip(frame["variant"], frame["seed"])], index=frame.index)
    if "model" in frame:
        keep &= frame["model"].isin(models) & frame["dataset"].isin(cfg.eval.datasets)
    return frame[keep].reset_index(drop=True)


def dvc_metrics(metrics: pd.DataFrame) -> dict:
    """Flat numbers for `dvc metrics show/diff`: mean over seeds per model and dataset."""
    out: dict = {}
    means = metrics.groupby(["model", "dataset"])[["mIoU", "mIoU_foreground", "oracle_mIoU"]].mean()
    for (model, dataset), row in means.iterrows():
        out.setdefault(model, {})[dataset] = {k: round(float(v), 3) for k, v in row.items() if pd.notna(v)}
    return out


def build_tables(cfg: ExperimentConfig, metrics_dir: Path, runs_dir: Path, out_dir: Path) -> list[str]:
    metrics = keep_study_rows(cfg, load_metrics(metrics_dir))
    if metrics.empty:
        raise FileNotFoundError(f"none of the metrics files under {metrics_dir} belong to this study's runs")
    dataset = cfg.eval.datasets[0]
    tables = [main_table(cfg, metrics)]
    tables += [ablation_table(cfg, metrics, name, dataset)
               for name in ABLATION_TABLES]
    tables += [baselines_table(cfg, metrics, dataset), per_class_table(metrics, dataset)]
    tables_dir = out_dir / "tables"
    for table in tables:
        table.write(tables_dir)
    checks = reproduction_checks(cfg, metrics, dataset)
    atomic_write_text(tables_dir / "checks.md", checks_markdown(checks))
    atomic_write_text(tables_dir / "checks.json", json.dumps(checks_records(checks), indent=2) + "\n")
    variants = pd.DataFrame([variant_attributes(cfg, v) for v in cfg.study.variants])
    atomic_write_text(tables_dir / "variants.csv", variants.to_csv(index=False))
    runs = keep_study_rows(cfg, load_run_summaries(runs_dir))
    atomic_write_text(tables_dir / "runs.csv", runs.to_csv(index=False))
    atomic_write_text(out_dir / "metrics_long.csv", metrics.to_csv(index=False))
    curves = keep_study_rows(cfg, training_curves(runs_dir))
    atomic_write_text(out_dir / "training_curves.csv", curves.to_csv(index=False))
    atomic_write_text(out_dir / "metrics.json", json.dumps(dvc_metrics(metrics), indent=2, sort_keys=True) + "\n")
    return [t.name for t in tables]
