"""Two nodes on loopback: the README's two-node torchrun command, launched twice (one launch per "node", c10d
rendezvous on 127.0.0.1, gloo).

- With a model without BatchNorm (the toy model of test_train_distributed.py), two one-process nodes train the same
  weights as one process on the whole global batch.
- The smoke model's projection heads and conv stem use BatchNorm, whose batch statistics stay per rank (as in the
  official code, no SyncBatchNorm): no single process computes them, so there the two-node run is compared with
  the same command on one node with two processes, which must give the same weights.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from test_train_distributed import STEPS, WORKER

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow


def readme_command() -> list[str]:
    """The README's multi-node command (the backticked `torchrun --nnodes 2 ...` in the entry-points table)."""
    found = re.findall(r"`(torchrun --nnodes 2 [^`]+)`", (REPO / "README.md").read_text())
    assert len(found) == 1, f"README.md should show one two-node torchrun command, found {found}"
    return shlex.split(found[0])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_PROCID")}
    env.update(OMP_NUM_THREADS="1", PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", PYTHONHASHSEED="0")
    # the toy worker imports the test helpers (tests/helpers/) as `helpers.*`
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")]))
    return env


def _launcher(cmd: list[str]) -> tuple[list[str], list[str]]:
    """The README command split into its torchrun part (with a free rendezvous port instead of the README's fixed one,
    which another program on a shared machine may hold) and the program part after `-m groupvit.cli`."""
    assert cmd[cmd.index("--rdzv_endpoint") + 1].startswith("127.0.0.1:") and "--nproc_per_node" in cmd
    cmd = list(cmd)
    cmd[cmd.index("--rdzv_endpoint") + 1] = f"127.0.0.1:{_free_port()}"
    split = cmd.index("-m")
    return [str(BIN / "torchrun"), *cmd[1:split]], cmd[split:]


def _two_nodes(launcher: list[str], program: list[str], cwd: Path) -> None:
    env = _env()
    nodes = [subprocess.Popen([*launcher, *program], cwd=cwd, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    logs = [node.communicate(timeout=300)[0] for node in nodes]
    for node, log in zip(nodes, logs):
        assert node.returncode == 0, log[-3000:]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["model" if "toy" in str(path) else "state_dict"]


def test_two_nodes_train_the_same_weights_as_one_process_on_the_same_global_batch(tmp_path):
    from groupvit.train.runner import train
    from helpers.toy import toy_data, toy_experiment, toy_parts

    launcher, _ = _launcher(readme_command())
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    _two_nodes(launcher, [str(script), str(tmp_path / "toy_two_nodes"), str(STEPS), "1"], tmp_path)
    torch.set_num_threads(1)
    single = train(toy_experiment(steps=STEPS, checkpoint_every=2, log_every=2), tmp_path / "toy_single",
                   variant="toy", data=toy_data(), parts=toy_parts(noise=0.0))
    two = json.loads((tmp_path / "toy_two_nodes" / "summary.json").read_text())
    assert two["world_size"] == 2 and two["global_batch"] == single["global_batch"] == 8
    a, b = _weights(tmp_path / "toy_two_nodes" / "model.pt"), _weights(tmp_path / "toy_single" / "model.pt")
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6, msg=f"{name} differs")


def test_readme_two_node_command_trains_the_smoke_model_like_one_node_with_two_processes(tmp_path):
    launcher, program = _launcher(readme_command())
    out = Path(program[program.index("--out") + 1])
    preset = program[program.index("--preset") + 1]
    assert preset == "smoke"
    env = _env()
    synth = subprocess.run([str(BIN / "groupvit"), "synth", "--preset", preset, "--out", f"data/{preset}/synthetic",
                            "--workers", "1", "--no-progress"], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=300)
    assert synth.returncode == 0, synth.stderr[-3000:]
    _two_nodes(launcher, program, tmp_path)

    one_node = [*program[:program.index("--out")], "--out", "one_node"]
    result = subprocess.run([str(BIN / "torchrun"), "--standalone", "--nproc_per_node", "2", *one_node], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    two = json.loads((tmp_path / out / "summary.json").read_text())
    ref = json.loads((tmp_path / "one_node" / "summary.json").read_text())
    assert two["world_size"] == ref["world_size"] == 2 and two["steps"] == ref["steps"] > 0
    assert two["final_losses"] == pytest.approx(ref["final_losses"], abs=1e-5)
    a, b = _weights(tmp_path / out / "model.pt"), _weights(tmp_path / "one_node" / "model.pt")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6, msg=f"{name} differs")
