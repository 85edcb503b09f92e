"""Code is part of a job's identity: after the smoke study, an edit to the code a job runs makes Snakemake plan that
job and its descendants, and nothing else; an edit to comments, benchmarks or tests plans nothing. DVC and Snakemake
agree: `dvc repro` records the code, and a fresh clone that pulls the results has nothing left to do.

Slow by nature: it works on a copy of the session's smoke study (tests/conftest.py) and asks Snakemake for a plan
after each edit.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers.workflow import BIN, GIT, copy_study, run, run_json

pytestmark = pytest.mark.slow
PROBE = "\n\ndef _code_identity_probe():\n    return 1\n"  # a new function: code, not a comment


@pytest.fixture(scope="module")
def study(smoke_study, tmp_path_factory) -> Path:
    return copy_study(smoke_study, tmp_path_factory.mktemp("identity") / "repo")


def _plan(root: Path) -> dict[str, int]:
    out = run(["snakemake", "-n", "--cores", "2"], root)
    if "Nothing to be done" in out:
        return {}
    jobs = {rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)$", out, flags=re.M)}
    jobs.pop("total", None)
    jobs.pop("all", None)
    return jobs


def test_a_copied_study_is_up_to_date(study):
    assert _plan(study) == {}


@pytest.mark.parametrize("path, edit, expected", [
    ("src/groupvit/evaluation/metrics.py", PROBE, {"evaluate": 6, "tables": 1, "report": 1}),
    ("src/groupvit/model/grouping.py", PROBE,
     {"pretrain": 2, "evaluate": 6, "tables": 1, "classify": 2, "classification_table": 1, "report": 1}),
    ("src/groupvit/model/loss.py", PROBE,
     {"pretrain": 2, "evaluate": 6, "tables": 1, "classify": 2, "classification_table": 1, "report": 1}),
    ("src/groupvit/evaluation/classification.py", PROBE, {"classify": 2, "classification_table": 1, "report": 1}),
    ("src/groupvit/report/tables.py", PROBE, {"tables": 1, "classification_table": 1, "report": 1}),
    ("src/groupvit/data/world/shapes.py", PROBE,
     {"synthesize_world": 1, "pretrain": 2, "evaluate": 6, "tables": 1, "classify": 2, "classification_table": 1,
      "report": 1}),
    ("src/groupvit/model/loss.py", "\n# a comment only: documentation is not behaviour\n", {}),
    ("src/groupvit/config/config.schema.yaml", "\n# the schema validates; it computes nothing\n", {}),
    ("benchmarks/model_step.py", PROBE, {}),
    ("tests/test_loss.py", PROBE, {}),
])
def test_a_code_edit_reruns_exactly_the_jobs_that_run_that_code(study, path, edit, expected):
    file = study / path
    original = file.read_text()
    try:
        file.write_text(original + edit)
        assert _plan(study) == expected
    finally:
        file.write_text(original)
    assert _plan(study) == {}


def test_dvc_plots_draw_one_line_per_run_and_the_report_figures_as_images(study):
    shown = run_json(["dvc", "plots", "show", "--json"], study)
    assert not shown.get("errors"), shown["errors"]
    plots = shown["data"]
    curves = plots["results/smoke/training_curves.csv"][0]["content"]
    assert curves["encoding"]["color"]["field"] == "run"
    runs = {row["run"] for row in curves["data"]["values"]}
    assert runs == {"groupvit_2stage/seed0", "vit_baselines/seed0"}
    images = [name for name, entries in plots.items() if entries and entries[0]["type"] == "image"]
    assert "results/smoke/figures/qualitative_soft.png" in images and len(images) >= 3


def test_a_fresh_clone_that_pulls_the_results_has_nothing_to_do_after_one_touch(study, tmp_path):
    """`dvc repro` records the code and results; `dvc push` to a local remote, a fresh `git clone` and `dvc pull`
    restore them; `snakemake --touch` (the README's one command) records them as up to date."""
    run(["dvc", "repro"], study, timeout=900)
    run(["dvc", "remote", "add", "-d", "local", str(tmp_path / "remote")], study)
    run(["dvc", "push"], study)
    run([*GIT, "add", "-A"], study)
    run([*GIT, "add", "-f", "results/smoke"], study)  # the default preset's small results are committed like this
    run([*GIT, "commit", "-qm", "results"], study)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(study), str(clone)], tmp_path)
    try:
        run(["dvc", "pull"], clone)
        assert "up to date" in run(["dvc", "status"], clone)
        run(["snakemake", "--touch", "--cores", "1"], clone)
        assert _plan(clone) == {}
    finally:
        shutil.rmtree(clone, ignore_errors=True)


def test_snakemake_lint_is_clean():
    repo = Path(__file__).resolve().parents[1]
    out = run(["snakemake", "--lint"], repo)
    assert "Congratulations, your workflow is in a good condition!" in out, out


def _dag_outputs(root: Path) -> set[str]:
    """Every output file of the DAG of the checkout's preset (`snakemake --summary`)."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(["snakemake", "--summary", "--cores", "1"], cwd=root, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    return {line.split("\t")[0] for line in result.stdout.splitlines()[1:] if line.strip()}


def test_no_file_among_the_results_is_left_over_from_an_earlier_run(study):
    written = {str(p.relative_to(study)) for p in (study / "results" / "smoke").rglob("*") if p.is_file()}
    assert written - _dag_outputs(study) == set()


def test_the_committed_default_results_are_exactly_what_its_dag_writes():
    repo = Path(__file__).resolve().parents[1]
    committed = set(subprocess.run(["git", "ls-files", "results/default"], cwd=repo, capture_output=True, text=True,
                                   check=True).stdout.split())
    if not committed:
        pytest.skip("not a git checkout with committed results")
    expected = {p for p in _dag_outputs(repo) if p.startswith("results/default/")}
    assert committed == expected, {"stale": committed - expected, "missing": expected - committed}
