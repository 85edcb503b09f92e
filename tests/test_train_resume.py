"""A run killed between checkpoints and resumed ends with exactly the weights of an uninterrupted run."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from groupvit.train.checkpointing import FORMAT, CheckpointManager, capture_rng_state, restore_rng_state
from groupvit.train.data_source import TrainData
from groupvit.train.runner import train
from helpers.toy import toy_data, toy_experiment, toy_parts


class Killed(Exception):
    """Stands in for SIGKILL: the process dies mid-run, after its last checkpoint."""


def crashing(data: TrainData, after_batches: int) -> TrainData:
    def make_batches(**kwargs):
        for i, batch in enumerate(data.make_batches(**kwargs)):
            if i == after_batches:
                raise Killed
            yield batch

    return TrainData(data.num_samples, data.content_hash, make_batches)


def final_weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "model.pt", weights_only=True)["model"]


@pytest.mark.parametrize("accum", [1, 2])
def test_resume_after_kill_is_bit_identical(tmp_path, accum):
    cfg = toy_experiment(steps=7, checkpoint_every=3, grad_accum_steps=accum)
    ref = train(cfg, tmp_path / "ref", variant="toy", data=toy_data(), parts=toy_parts())

    killed = tmp_path / "killed"
    with pytest.raises(Killed):  # dies in step 5 (mid-accumulation when accum > 1), after the step-3 checkpoint
        train(cfg, killed, variant="toy", data=crashing(toy_data(), 4 * accum + accum // 2), parts=toy_parts())
    assert [p.name for p in CheckpointManager(killed / "checkpoints").list()] == ["step-00000003.pt"]
    assert not (killed / "model.pt").exists()
    logged = [json.loads(line)["step"] for line in (killed / "metrics.jsonl").read_text().splitlines()]
    assert logged == [1, 2, 3, 4]

    resumed = train(cfg, killed, variant="toy", data=toy_data(), parts=toy_parts())
    assert resumed["resumed_from"].endswith("step-00000003.pt")
    assert resumed["steps"] == ref["steps"] == 7 and resumed["samples_seen"] == ref["samples_seen"]
    a, b = final_weights(tmp_path / "ref"), final_weights(killed)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), f"{name} differs after resume"
    # the optimiser state matches too, and the metrics file reads like one uninterrupted run
    oa = torch.load(tmp_path / "ref/checkpoints/step-00000007.pt", weights_only=True)["optimizer"]["state"]
    ob = torch.load(killed / "checkpoints/step-00000007.pt", weights_only=True)["optimizer"]["state"]
    assert all(torch.equal(oa[k]["exp_avg_sq"], ob[k]["exp_avg_sq"]) for k in oa)
    steps = [json.loads(line)["step"] for line in (killed / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 8))


def test_a_different_run_is_not_identical(tmp_path):
    """Guards the test above against comparing two things that are equal by construction."""
    cfg = toy_experiment(steps=4, checkpoint_every=2)
    train(cfg, tmp_path / "a", data=toy_data(), parts=toy_parts())
    train(toy_experiment(steps=4, checkpoint_every=2, seed=1), tmp_path / "b", data=toy_data(), parts=toy_parts())
    a, b = final_weights(tmp_path / "a"), final_weights(tmp_path / "b")
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_checkpoints_load_weights_only_and_keep_the_last_k(tmp_path):
    cfg = toy_experiment(steps=8, checkpoint_every=2, keep_checkpoints=2)
    train(cfg, tmp_path, data=toy_data(), parts=toy_parts())
    paths = CheckpointManager(tmp_path / "checkpoints").list()
    assert [p.name for p in paths] == ["step-00000006.pt", "step-00000008.pt"]
    assert not list((tmp_path / "checkpoints").glob("*.tmp"))
    state = torch.load(paths[-1], weights_only=True)
    assert state["format"] == FORMAT and state["step"] == 8 and state["loop"]["micro_step"] == 8
    assert {"model", "optimizer", "scaler", "schedule", "rng", "config"} <= set(state)
    assert isinstance(state["config"], dict) and state["config"]["train"]["steps"] == 8
    assert len(state["rng"]) == 1 and isinstance(state["rng"][0]["torch"], torch.Tensor)
    torch.load(tmp_path / "model.pt", weights_only=True)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["steps"] == 8 and summary["data_content_hash"] == "toy-64-0"
    assert summary["config"]["train"]["keep_checkpoints"] == 2 and summary["git_commit"]


def test_rng_state_round_trip_covers_python_numpy_torch():
    import random

    import numpy as np

    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    state = capture_rng_state()
    first = (random.random(), np.random.rand(), torch.rand(1).item(), np.random.randn())
    torch.save(state, buffer := __import__("io").BytesIO())
    buffer.seek(0)
    restore_rng_state(torch.load(buffer, weights_only=True))
    assert (random.random(), np.random.rand(), torch.rand(1).item(), np.random.randn()) == first


def test_finished_run_is_not_trained_again_and_resume_false_starts_over(tmp_path):
    cfg = toy_experiment(steps=3, checkpoint_every=3)
    first = train(cfg, tmp_path, data=toy_data(), parts=toy_parts())
    again = train(cfg, tmp_path, data=toy_data(), parts=toy_parts())
    assert again == json.loads(json.dumps(first))  # the stored summary, untouched
    fresh = train(cfg, tmp_path, resume=False, data=toy_data(), parts=toy_parts())
    assert fresh["resumed_from"] is None and fresh["steps"] == 3


def test_a_rerun_after_snakemake_deleted_the_outputs_keeps_the_runs_figures(tmp_path):
    """Snakemake deletes model.pt and summary.json before rerunning a job (e.g. after a param change the recipe check
    accepts): the rerun finds nothing left to train and must report the losses and speed of the run that trained,
    not NaN, and write the model again."""
    cfg = toy_experiment(steps=3, checkpoint_every=3)
    first = train(cfg, tmp_path, data=toy_data(), parts=toy_parts())
    (tmp_path / "model.pt").unlink()
    (tmp_path / "summary.json").unlink()
    again = train(cfg, tmp_path, data=toy_data(), parts=toy_parts())
    assert (tmp_path / "model.pt").exists() and json.loads((tmp_path / "summary.json").read_text())["steps"] == 3
    for key in ("final_loss", "final_losses", "samples_per_s", "data_wait_frac"):
        assert again[key] == first[key], key
    assert first["final_loss"] == first["final_loss"]  # a number, not NaN


def test_resume_with_another_launch_shape_is_refused(tmp_path):
    from groupvit.dataclass_io import ConfigError

    with pytest.raises(Killed):
        train(toy_experiment(steps=6, checkpoint_every=3), tmp_path, data=crashing(toy_data(), 4), parts=toy_parts())
    with pytest.raises(ConfigError, match="grad_accum_steps: 1 -> 2"):
        train(toy_experiment(steps=6, checkpoint_every=3, grad_accum_steps=2), tmp_path, data=toy_data(),
              parts=toy_parts())


def test_a_changed_recipe_is_never_resumed(tmp_path):
    """A finished run with another learning rate must not come back as 'already finished': refused by default,
    retrained from scratch with on_recipe_change='restart' (what the workflow passes), and logging or checkpoint
    settings alone do not count as a change."""
    from groupvit.dataclass_io import ConfigError

    train(toy_experiment(steps=4), tmp_path / "run", data=toy_data(), parts=toy_parts())
    first = (tmp_path / "run" / "model.pt").read_bytes()
    train(toy_experiment(steps=4, log_every=2, keep_checkpoints=5), tmp_path / "run", data=toy_data(),
          parts=toy_parts())  # same recipe: already finished, nothing retrained
    assert (tmp_path / "run" / "model.pt").read_bytes() == first
    with pytest.raises(ConfigError, match=r"train.base_lr: 0.01 -> 0.02.*--on-recipe-change restart"):
        train(toy_experiment(steps=4, base_lr=2e-2), tmp_path / "run", data=toy_data(), parts=toy_parts())
    train(toy_experiment(steps=4, base_lr=2e-2), tmp_path / "run", data=toy_data(), parts=toy_parts(),
          on_recipe_change="restart")
    train(toy_experiment(steps=4, base_lr=2e-2), tmp_path / "fresh", data=toy_data(), parts=toy_parts())
    a, b = final_weights(tmp_path / "run"), final_weights(tmp_path / "fresh")
    assert all(torch.equal(a[name], b[name]) for name in a)
