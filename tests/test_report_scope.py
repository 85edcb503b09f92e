"""The results tables hold exactly the study's runs: metrics left on disk by an earlier config (a seed or a variant
the study no longer has) must not change its numbers."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from groupvit.config import load_config
from groupvit.report.build import build_tables

REPO = Path(__file__).resolve().parents[1]


def _write_metrics(root: Path, model: str, variant: str, grouper: str, seed: int, miou: float) -> None:
    path = root / model / f"seed{seed}" / "synthetic.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    per_class = {"background": 0.5, "circle": miou}
    path.write_text(json.dumps({
        "model": model, "variant": variant, "grouper": grouper, "dataset": "synthetic", "mIoU": miou, "aAcc": 0.6,
        "num_images": 16, "per_class_IoU": per_class, "mIoU_foreground": miou, "oracle_mIoU": 0.3,
        "floor_mIoU": 0.1,
    }))


def test_tables_ignore_metrics_of_runs_the_study_does_not_have(tmp_path):
    cfg = load_config(REPO / "config" / "config.yaml", "smoke")  # groupvit_2stage and vit_baselines, seed 0 each
    metrics = tmp_path / "metrics"
    _write_metrics(metrics, "groupvit_2stage", "groupvit_2stage", "groupvit", 0, 0.20)
    for grouper in cfg.variants["vit_baselines"].groupers:
        _write_metrics(metrics, f"vit_baselines_{grouper}", "vit_baselines", grouper, 0, 0.10)
    # left over from an earlier config: a second seed and a variant the study dropped
    _write_metrics(metrics, "groupvit_2stage", "groupvit_2stage", "groupvit", 1, 0.90)
    _write_metrics(metrics, "groupvit_2stage_soft", "groupvit_2stage_soft", "groupvit", 0, 0.90)
    (tmp_path / "runs").mkdir()
    build_tables(cfg, metrics, tmp_path / "runs", tmp_path / "out")
    long = pd.read_csv(tmp_path / "out" / "metrics_long.csv")
    assert sorted(set(zip(long["model"], long["seed"]))) == sorted(
        [("groupvit_2stage", 0)] + [(f"vit_baselines_{g}", 0) for g in cfg.variants["vit_baselines"].groupers])
    dvc = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert dvc["groupvit_2stage"]["synthetic"]["mIoU"] == 20.0


def test_default_ablations_land_in_the_paper_tables_and_checks():
    """Every ablation of the default study is placed in its paper table and tested by a check."""
    from groupvit.report.checks import reproduction_checks
    from groupvit.report.tables import members

    cfg = load_config(REPO / "config" / "config.yaml", "default")
    assert set(members(cfg, "assignment_x_multilabel")) == {
        "groupvit_2stage", "groupvit_2stage_soft", "groupvit_2stage_no_multilabel", "groupvit_2stage_soft_no_multilabel"}
    assert "groupvit_1stage" in members(cfg, "stages")
    assert set(members(cfg, "group_tokens")) == {"groupvit_1stage", "groupvit_1stage_g16o4", "groupvit_1stage_g32"}
    rows = []
    for variant, miou in (("groupvit_2stage", 0.2), ("groupvit_2stage_soft", 0.15),
                          ("groupvit_2stage_no_multilabel", 0.1), ("groupvit_2stage_soft_no_multilabel", 0.08),
                          ("groupvit_1stage", 0.12), ("groupvit_1stage_g16o4", 0.11), ("groupvit_1stage_g32", 0.13)):
        rows.append({"model": variant, "dataset": "synthetic", "mIoU": 100 * miou, "floor_mIoU": 10.0, "seed": 0})
    rows += [{"model": f"vit_baselines_{g}", "dataset": "synthetic", "mIoU": 11.0, "seed": 0}
             for g in cfg.variants["vit_baselines"].groupers]
    checks = reproduction_checks(cfg, pd.DataFrame(rows), "synthetic")
    untested = [c.claim for c in checks if c.verdict == "not tested"]
    assert not untested, untested
