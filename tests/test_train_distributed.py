"""Two gloo processes under torchrun, each with half the batch, train the same weights as one process with the
whole batch: negatives are gathered across ranks with gradients and DDP averages the gradients."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from groupvit.train.runner import train
from helpers.toy import toy_data, toy_experiment, toy_parts

STEPS = 4
WORKER = textwrap.dedent(
    """
    import sys, torch
    torch.set_num_threads(1)
    from groupvit.train.runner import train
    from helpers.toy import toy_data, toy_experiment, toy_parts
    from groupvit.train.distributed import world_info_from_env
    assert world_info_from_env().world_size == 2
    train(toy_experiment(steps=int(sys.argv[2]), checkpoint_every=2, log_every=2, grad_accum_steps=int(sys.argv[3])),
          sys.argv[1], variant="toy", data=toy_data(), parts=toy_parts(noise=0.0))
    """
)


def _torchrun(tmp_path: Path, out: Path, accum: int) -> subprocess.CompletedProcess:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_PROCID")}
    env["OMP_NUM_THREADS"] = "1"
    # the worker script imports the test helpers (tests/helpers/) as `helpers.*`
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parent), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(script), str(out), str(STEPS), str(accum)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)


@pytest.mark.slow
def test_two_process_gloo_equals_one_process_on_the_same_global_batch(tmp_path):
    result = _torchrun(tmp_path, tmp_path / "ddp", accum=1)
    assert result.returncode == 0, result.stderr[-3000:]
    single = train(toy_experiment(steps=STEPS, checkpoint_every=2, log_every=2), tmp_path / "single",
                   variant="toy", data=toy_data(), parts=toy_parts(noise=0.0))

    ddp_summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert ddp_summary["world_size"] == 2 and ddp_summary["per_rank_batch"] == 4
    assert ddp_summary["global_batch"] == single["global_batch"] == 8
    assert ddp_summary["final_loss"] == pytest.approx(single["final_loss"], abs=1e-5)
    a = torch.load(tmp_path / "ddp" / "model.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "single" / "model.pt", weights_only=True)["model"]
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6, msg=f"{name} differs")
    torch.manual_seed(0)  # the runner seeds with train.seed before building the model
    initial = toy_parts(noise=0.0).build_model(None).state_dict()
    assert any(not torch.allclose(a[k], initial[k], atol=1e-3) for k in a), "training did not move the weights"
    # rank 0 alone writes: one metrics line per log point, checkpoints carry both ranks' RNG states
    lines = (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [2, 4]
    ckpt = torch.load(tmp_path / "ddp" / "checkpoints" / "step-00000004.pt", weights_only=True)
    assert len(ckpt["rng"]) == 2 and ckpt["world_size"] == 2


REAL_WORKER = textwrap.dedent(
    """
    import sys, torch
    torch.set_num_threads(1)
    from groupvit.config import load_config
    from groupvit.train.runner import run_training
    cfg = load_config(overrides=sys.argv[3:], preset="smoke")
    run_training(cfg, "groupvit_2stage_no_multilabel", 0, sys.argv[1], data_dir=sys.argv[2])
    """
)


@pytest.mark.slow
def test_real_model_trains_under_two_gloo_processes(tmp_path):
    """GroupViT + GroupViTLoss + the shard loader under DDP, in the variant whose multi-label logit scale gets
    no gradient (DDP must be told to expect unused parameters)."""
    from test_train_real import TINY

    from groupvit.config import load_config
    from groupvit.data.world.generate import generate_world

    overrides = [o for o in TINY if not o.startswith("train.steps")] + ["train.steps=2"]
    generate_world(load_config(overrides=overrides, preset="smoke").world, tmp_path / "w", workers=1, progress=False)
    script = tmp_path / "real_worker.py"
    script.write_text(REAL_WORKER)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_PROCID")}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
           str(tmp_path / "run"), str(tmp_path / "w"), *overrides]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 2 and summary["per_rank_batch"] == 4
    # every loss term the recipe switches on is logged (the smoke preset inherits the default's group-usage and
    # assignment-logit spread terms)
    assert set(summary["final_losses"]) == {"loss", "contrastive", "multi_label", "group_usage", "assign_logit_spread"}
