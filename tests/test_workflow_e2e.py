"""The whole workflow on the smoke preset, as a user runs it: `snakemake`, then `dvc repro` on the same checkout.

Slow by nature (about 3 minutes on 2 cores): it trains two tiny models, scores five, builds tables and renders the
papermill report. It runs in a copy of the checkout so the developer's data/, runs/ and results/ stay untouched.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from helpers.workflow import BIN, REPO, copy_study, run, run_json

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke_checkout(smoke_study, tmp_path_factory) -> Path:
    return copy_study(smoke_study, tmp_path_factory.mktemp("checkout") / "repo")


def test_snakemake_builds_tables_metrics_and_report(smoke_checkout):
    results = smoke_checkout / "results" / "smoke"
    zero_shot = (results / "tables" / "zero_shot.md").read_text()
    for model in ["groupvit_2stage", "vit_baselines_kmeans", "vit_baselines_pixelwise", "vit_baselines_spectral"]:
        assert model in zero_shot
    metrics = json.loads((results / "metrics.json").read_text())
    assert 0.0 <= metrics["groupvit_2stage"]["synthetic"]["mIoU"] <= 100.0
    html = (results / "reports" / "report.html").read_text()
    assert "What reproduced and what did not" in html and "Traceback" not in html
    # zero-shot classification of every trained model, in a table beside the paper's ImageNet top-1 and in the report
    classification = (results / "tables" / "zero_shot_classification.md").read_text()
    assert "| groupvit_2stage | synthetic |" in classification and "| vit_baselines | synthetic |" in classification
    assert "42.9" in classification and 'id="Zero-shot-classification"' in html
    assert sorted(p.relative_to(results / "classification").as_posix()
                  for p in (results / "classification").rglob("*.json")) == [
        "groupvit_2stage/seed0/synthetic.json", "vit_baselines/seed0/synthetic.json"]
    assert (results / "figures" / "qualitative_soft.png").stat().st_size > 10_000
    # the deviations table lists every key the preset changes (pandas would print only the first and last five)
    from groupvit.config import load_config
    from groupvit.report.tables import paper_deviations

    changed = list(paper_deviations(load_config(smoke_checkout / "config" / "config.yaml", "smoke"))["key"])
    section = html.split('id="Deviations-from-the-paper', 1)[1].split("<h2", 1)[0]
    assert len(changed) > 10 and [k for k in changed if f">{k}<" not in section] == []


def test_report_embeds_every_figure_and_shows_no_stderr_warnings_or_machine_paths(smoke_checkout):
    results = smoke_checkout / "results" / "smoke"
    cells = [c for c in json.loads((results / "reports" / "report.ipynb").read_text())["cells"]
             if c["cell_type"] == "code"]
    figure_cells = [c for c in cells if "figure" in c["metadata"].get("tags", [])]
    assert len(figure_cells) >= 6  # mIoU bars, per-class heatmap, learning curves, study curves, group maps, concepts
    without_image = ["".join(c["source"])[:60] for c in figure_cells
                     if not any("image/png" in out.get("data", {}) for out in c["outputs"])]
    assert without_image == []
    stderr = ["".join(out["text"]) for c in cells for out in c["outputs"]
              if out["output_type"] == "stream" and out["name"] == "stderr"]
    assert stderr == []

    html = (results / "reports" / "report.html").read_text()
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', html)) >= len(figure_cells)
    assert [p for p in (str(smoke_checkout), str(REPO), "/.venv/", "site-packages", "Warning") if p in html] == []
    # a contents list whose every entry links to a section, and one heading per section
    sections = re.findall(r'<h2 id="([^"]+)"', html)
    assert len(sections) == len(set(sections)) >= 8, sections
    contents = re.findall(r'<a href="#([^"]+)"', html.split('<h2 id=', 1)[0])
    assert contents == sections
    assert "learning_curves.png" in html and "not comparable" in html
    for fact in ("torch", "snakemake", "dvc", "python", "CPU", "threads", "Training time"):
        assert fact in html, fact
    # the figures folder holds exactly the figures the report rule declares (the notebook writes each of them)
    assert sorted(p.name for p in (results / "figures").iterdir()) == [
        "group_concepts.png", "miou_bars.png", "per_class_iou.png", "qualitative_hard.png", "qualitative_soft.png",
        "training_curves.png"]


def test_second_run_has_nothing_to_do_and_a_deleted_checkpoint_reruns_only_its_descendants(smoke_checkout):
    assert "Nothing to be done" in run(["snakemake", "--cores", "2", "-n"], smoke_checkout)
    (smoke_checkout / "runs" / "smoke" / "vit_baselines" / "seed0" / "model.pt").unlink()
    plan = run(["snakemake", "--cores", "2", "-n"], smoke_checkout)
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", plan, flags=re.M))
    assert jobs.get("pretrain") == "1" and jobs.get("evaluate") == "4" and jobs.get("classify") == "1", plan
    assert "synthesize_world" not in jobs


def test_dvc_repro_runs_the_same_dag_and_then_is_up_to_date(smoke_checkout):
    run(["snakemake", "--cores", "2"], smoke_checkout, timeout=900)  # restore what the previous test deleted
    run(["dvc", "repro"], smoke_checkout, timeout=900)
    assert (smoke_checkout / "dvc.lock").exists()
    second = run(["dvc", "repro"], smoke_checkout)
    assert "didn't change" in second or "up to date" in second
    shown = run(["dvc", "metrics", "show"], smoke_checkout)
    assert "groupvit_2stage" in shown


def test_dvc_experiments_with_a_changed_param_record_and_compare_their_metrics(smoke_checkout):
    """`dvc exp run -S` in the workspace (where Snakemake keeps the metadata its rerun decisions need): each
    experiment retrains, keeps its own metrics (results/smoke/metrics.json is visible to git although results/smoke is
    ignored), and `dvc metrics diff` compares two experiments."""
    for name, steps in (("steps4", 4), ("steps5", 5)):
        run(["dvc", "exp", "run", "-n", name, "-S", f"config/config.yaml:presets.smoke.train.steps={steps}"],
             smoke_checkout, timeout=900)
    shown = run_json(["dvc", "exp", "show", "--json"], smoke_checkout)
    exps = {rev.get("name"): rev for entry in shown for exp in entry.get("experiments") or []
            for rev in exp.get("revs", [])}
    for name, steps in (("steps4", 4), ("steps5", 5)):
        data = exps[name]["data"]
        assert data["params"]["config/config.yaml"]["data"]["presets"]["smoke"]["train"]["steps"] == steps
        assert 0.0 <= data["metrics"]["results/smoke/metrics.json"]["data"]["groupvit_2stage"]["synthetic"]["mIoU"] <= 100
    summaries = [json.loads(p.read_text()) for p in (smoke_checkout / "runs" / "smoke").glob("*/seed*/summary.json")]
    assert summaries and all(s["steps"] == 5 for s in summaries)  # the workspace holds the last experiment
    diff = run_json(["dvc", "metrics", "diff", "steps4", "steps5", "--all", "--json"], smoke_checkout)
    row = diff["results/smoke/metrics.json"]["groupvit_2stage.synthetic.mIoU"]
    assert row["old"] == exps["steps4"]["data"]["metrics"]["results/smoke/metrics.json"]["data"][
        "groupvit_2stage"]["synthetic"]["mIoU"]
    assert row["new"] == exps["steps5"]["data"]["metrics"]["results/smoke/metrics.json"]["data"][
        "groupvit_2stage"]["synthetic"]["mIoU"]


def test_invalid_preset_is_rejected_at_dag_build_with_valid_names(smoke_checkout):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(["snakemake", "-n", "--config", "preset=nope"], cwd=smoke_checkout, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "valid presets" in result.stdout + result.stderr


def test_an_odd_study_gives_its_last_training_all_the_cores(smoke_checkout, tmp_path):
    """Thread counts are a fixed rule of the DAG: half of --cores per job, except that with an odd number of
    trainings the last one in study order gets all of them (it would otherwise run alone on half the machine)."""
    extra = tmp_path / "three_trainings.yaml"
    extra.write_text("presets:\n  smoke:\n    variants:\n      groupvit_2stage: {seeds: [0, 1]}\n")

    def threads(cores: int, *config: str) -> dict[str, int]:
        plan = run(["snakemake", "-n", "-p", "-F", "--cores", str(cores), *config], smoke_checkout)
        found = re.findall(r"OMP_NUM_THREADS=(\d+) groupvit train .*?--variant (\w+) --seed (\d+)", plan)
        return {f"{variant}/{seed}": int(n) for n, variant, seed in found}

    assert threads(4, "--configfile", "config/config.yaml", str(extra)) == {
        "groupvit_2stage/0": 2, "groupvit_2stage/1": 2, "vit_baselines/0": 4}
    assert threads(4) == {"groupvit_2stage/0": 2, "vit_baselines/0": 2}  # even: every job gets half


def test_only_what_a_run_learns_from_retrains_it(smoke_checkout, tmp_path):
    """An evaluation setting re-scores the checkpoints without retraining them; a logging setting changes nothing; a
    training setting retrains (Snakemake's rerun decision and the trainer's resume check use the same recipe)."""

    def planned(override: str) -> dict[str, str]:
        extra = tmp_path / "override.yaml"
        extra.write_text(f"presets:\n  smoke:\n    {override}\n")
        plan = run(["snakemake", "-n", "--cores", "2", "--configfile", "config/config.yaml", str(extra)],
                    smoke_checkout)
        return dict(re.findall(r"^(\w+)\s+(\d+)$", plan, flags=re.M))

    assert "pretrain" not in planned("description: unchanged")  # the checkout is up to date to begin with
    rescored = planned("eval: {bg_thresh: 0.7}")
    assert "pretrain" not in rescored and rescored.get("evaluate") == "6", rescored
    assert "classify" not in rescored  # a segmentation setting; a classification one re-classifies
    assert planned("eval: {cls_crop: 48}").get("classify") == "2"
    assert "pretrain" not in planned("train: {log_every: 3}")
    assert planned("train: {base_lr: 0.001}").get("pretrain") == "2"
