"""Which zero-shot classifications the workflow plans: the world's object crops under a synthetic preset, every
ImageNet-layout folder under <eval_data.root>/classification/ under the paper preset, and a classification rerun
only for a setting classification uses."""
from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from groupvit.config import load_config
from groupvit.evaluation.classification_sources import classification_settings, classification_sources

REPO = Path(__file__).resolve().parents[1]


def _paper_plan(eval_root: Path) -> str:
    cmd = [sys.executable, "-m", "snakemake", "-n", "-p", "--cores", "4", "--config", "preset=paper",
           f"presets={{paper: {{eval_data: {{root: {eval_root}}}}}}}"]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def test_the_paper_preset_classifies_every_imagenet_layout_folder_present(tmp_path):
    root = tmp_path / "real"
    (root / "classification" / "imagenet" / "tench").mkdir(parents=True)
    (root / "classification" / "not.a.name").mkdir()  # not usable as a file name part: left out
    plan = _paper_plan(root)
    folders = re.findall(r"groupvit classify .*?--folder (\S+) ", plan)
    assert folders == [str(root / "classification" / "imagenet")]
    assert "results/paper/classification/groupvit_2stage/seed0/imagenet.json" in plan
    assert "groupvit classification-table" in plan


def test_without_a_folder_the_paper_preset_plans_no_classification(tmp_path):
    plan = _paper_plan(tmp_path / "real")
    assert "groupvit classify" not in plan and "classification-table" not in plan
    assert "rule report:" in plan  # the report does not wait for a table nothing makes


def test_sources_and_settings(tmp_path):
    (tmp_path / "classification" / "imagenet").mkdir(parents=True)
    assert classification_sources(["synthetic"], tmp_path) == {"synthetic": None}
    assert classification_sources(["voc"], tmp_path) == {"imagenet": str(tmp_path / "classification" / "imagenet")}
    assert classification_sources(["voc"], tmp_path / "missing") == {}
    cfg = load_config(REPO / "config" / "config.yaml", "smoke")
    segmentation_only = replace(cfg, eval=replace(cfg.eval, bg_thresh=0.7, window=32))
    assert classification_settings(segmentation_only) == classification_settings(cfg)
    assert classification_settings(replace(cfg, eval=replace(cfg.eval, cls_crop=48))) != classification_settings(cfg)
