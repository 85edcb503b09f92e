"""A NaN loss stops the run naming the step and the last good checkpoint (or is skipped); a time budget stops
cleanly with a checkpoint and a budget-limited summary."""
from __future__ import annotations

import json

import pytest
import torch

from groupvit.train.loop import NonFiniteLossError
from groupvit.train.runner import train
from helpers.toy import toy_data, toy_experiment, toy_parts


@pytest.mark.parametrize("log_every", [1, 4])
def test_nan_stops_naming_step_and_last_good_checkpoint(tmp_path, log_every):
    cfg = toy_experiment(steps=10, checkpoint_every=2, log_every=log_every)
    with pytest.raises(NonFiniteLossError) as err:
        train(cfg, tmp_path, data=toy_data(), parts=toy_parts(nan_at_calls=(4,)))  # step index 4
    assert err.value.step == 4
    assert err.value.last_checkpoint.name == "step-00000004.pt"
    assert "step 4" in str(err.value) and "step-00000004.pt" in str(err.value)
    # nothing written after the bad step: the newest checkpoint is the last good one and holds finite weights
    ckpts = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert ckpts == ["step-00000002.pt", "step-00000004.pt"]
    state = torch.load(tmp_path / "checkpoints" / ckpts[-1], weights_only=True)
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert not (tmp_path / "model.pt").exists()


def test_nan_before_any_checkpoint_says_so(tmp_path):
    with pytest.raises(NonFiniteLossError, match="step 0.*none written yet"):
        train(toy_experiment(steps=4, checkpoint_every=3), tmp_path, data=toy_data(),
              parts=toy_parts(nan_at_calls=(0,)))


def test_nan_steps_are_skipped_and_counted(tmp_path):
    cfg = toy_experiment(steps=6, nonfinite="skip")
    summary = train(cfg, tmp_path, data=toy_data(), parts=toy_parts(nan_at_calls=(1, 3)))
    assert summary["steps"] == 6 and summary["skipped_steps"] == 2
    weights = torch.load(tmp_path / "model.pt", weights_only=True)["model"]
    assert all(torch.isfinite(v).all() for v in weights.values())
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["skipped_steps"] == 2
    losses = [r["loss"] for r in records]  # log_every=1: the skipped steps' windows are empty -> NaN
    assert [v != v for v in losses] == [False, True, False, True, False, False]


def test_time_budget_stops_cleanly_with_checkpoint(tmp_path):
    cfg = toy_experiment(steps=50, checkpoint_every=100, time_budget_s=1e-6)
    summary = train(cfg, tmp_path, data=toy_data(), parts=toy_parts())
    assert summary["budget_limited"] is True and summary["steps"] == 1
    assert (tmp_path / "checkpoints" / "step-00000001.pt").exists() and (tmp_path / "model.pt").exists()
    stored = json.loads((tmp_path / "summary.json").read_text())
    assert stored["budget_limited"] is True and stored["total_steps"] == 50
    # resuming a spent budget trains nothing more
    again = train(cfg, tmp_path, data=toy_data(), parts=toy_parts())
    assert again["steps"] == 1


def test_no_budget_runs_all_steps(tmp_path):
    summary = train(toy_experiment(steps=5, clip_grad=0.0), tmp_path, data=toy_data(), parts=toy_parts())
    assert summary["budget_limited"] is False and summary["steps"] == 5
    norms = [json.loads(line)["grad_norm"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(norms) == 5 and all(n > 0 for n in norms)  # logged even without clipping
