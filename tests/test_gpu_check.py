"""benchmarks/gpu_check.py in its tiny CPU mode: every section runs and the JSON holds the figures a GPU run reports."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import gpu_check  # noqa: E402


@pytest.mark.slow
def test_tiny_mode_runs_every_section_on_the_cpu_and_writes_the_json(tmp_path):
    out = tmp_path / "gpu.json"
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--tiny", "--out", str(out)],
                            capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads(out.read_text())
    assert record["tiny"] is True and record["machine"]["device"] == "cpu"
    sections = record["sections"]
    assert set(sections) == {"loader", "train_step_eager", "train_step_compiled", "eval_448_slide", "default_train"}
    assert [name for name, row in sections.items() if "skipped" in row] == []
    for name in ("train_step_eager", "train_step_compiled"):
        row = sections[name]
        assert row["flops_per_step"] > 0 and row["samples_per_s"] > 0 and row["loader_workers_needed"] >= 1
        assert row["mfu"] is None  # no GPU peak to compare with
    assert sections["train_step_compiled"]["compile"] is True
    assert sections["loader"]["samples_per_s_per_worker"] > 0
    assert sections["eval_448_slide"]["windows_per_image"] > 1 and sections["eval_448_slide"]["images_per_s"] > 0
    assert sections["default_train"]["steps"] == 3 and sections["default_train"]["samples_per_s"] > 0


@pytest.mark.parametrize(("name", "tflops"), [("NVIDIA H100 80GB HBM3", 989.4), ("NVIDIA H100 PCIe", 756.0),
                                               ("NVIDIA H200", 989.4), ("NVIDIA A100-SXM4-80GB", 312.0)])
def test_mfu_uses_the_cards_dense_bf16_peak(monkeypatch, name, tflops):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    peak, source = gpu_check.bf16_peak(torch.device("cuda"), None)
    assert peak == tflops * 1e12 and name in source


def test_an_unknown_card_needs_its_peak_given():
    assert gpu_check.bf16_peak(torch.device("cpu"), None)[0] is None
    assert gpu_check.bf16_peak(torch.device("cpu"), 100.0)[0] == 100e12
