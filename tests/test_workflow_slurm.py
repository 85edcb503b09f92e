"""The smoke study on a real one-node SLURM cluster (workflow/profiles/slurm-local/cluster.sh: munge, slurmctld and
slurmd on 127.0.0.1) through `snakemake --profile workflow/profiles/slurm --workflow-profile
workflow/profiles/slurm-local`: every job goes through sbatch, a training killed with scancel is submitted again and
resumes from its checkpoint, and the metric files equal those of a local `snakemake --cores 2` run.

Both runs build the metric files of every scored model (training and evaluation jobs, not the tables and report that
tests/test_workflow_e2e.py covers), with the smoke trainings lengthened to 12 steps so that a checkpoint exists well
before a training ends. Needs root and Debian's slurm-wlm + munge (.ci/run installs them); skipped with the reason
where they are missing or the cluster cannot start. About 5 minutes on 2 cores.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.workflow import copy_checkout

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CLUSTER = REPO / "workflow" / "profiles" / "slurm-local" / "cluster.sh"
SLURM_ARGS = ["--profile", "workflow/profiles/slurm", "--workflow-profile", "workflow/profiles/slurm-local"]
KILLED = "groupvit_2stage"  # the training cancelled once its first checkpoint exists
STEPS = 12

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    path = os.pathsep.join([str(BIN), "/usr/sbin", os.environ.get("PATH", "")])
    return {**os.environ, "PATH": path, "PYTHONHASHSEED": "0", **(extra or {})}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    missing = [b for b in ("munged", "slurmctld", "slurmd", "sbatch", "scancel")
               if not shutil.which(b, path=_env()["PATH"])]
    if missing:
        pytest.skip(f"SLURM/munge not installed ({', '.join(missing)} missing): apt-get install -y slurm-wlm munge")
    if os.geteuid() != 0:
        pytest.skip("starting slurmd needs root")
    folder = tmp_path_factory.mktemp("slurm")
    ports = {"SLURM_LOCAL_CTLD_PORT": str(_free_port()), "SLURM_LOCAL_SLURMD_PORT": str(_free_port())}
    started = subprocess.run([str(CLUSTER), "start", str(folder)], env=_env(ports), capture_output=True, text=True,
                             timeout=180)
    if started.returncode:
        subprocess.run([str(CLUSTER), "stop", str(folder)], env=_env(ports), capture_output=True, timeout=60)
        pytest.skip(f"the one-node SLURM cluster did not start here: {started.stderr.strip()[-1500:]}")
    yield folder
    subprocess.run([str(CLUSTER), "stop", str(folder)], env=_env(ports), capture_output=True, timeout=60)


def _checkout(root: Path) -> Path:
    copy_checkout(root)
    config = root / "config" / "config.yaml"
    text = re.sub(r"^preset: \w+", "preset: smoke", config.read_text(), flags=re.M)
    smoke = text.index("\n  smoke:\n")
    steps = re.compile(r"^      steps: 6$", flags=re.M).search(text, smoke)
    assert steps, "the smoke preset's train.steps is no longer 6: update this test"
    config.write_text(text[:steps.start()] + f"      steps: {STEPS}" + text[steps.end():])
    return root


def _metric_targets(root: Path) -> list[str]:
    """The metric files of every (model, seed, dataset) the study scores, from a dry run's plan."""
    plan = subprocess.run([str(BIN / "snakemake"), "-n", "--cores", "2", "--forceall"], cwd=root, env=_env(),
                          capture_output=True, text=True, timeout=300)
    assert plan.returncode == 0, plan.stderr[-3000:]
    targets = sorted(set(re.findall(r"(results/smoke/metrics/\S+?\.json)", plan.stdout)))
    evaluations = re.search(r"^evaluate\s+(\d+)$", plan.stdout, flags=re.M)
    assert evaluations and len(targets) == int(evaluations.group(1)) >= 5, plan.stdout[-3000:]
    return targets


def _metric_files(root: Path) -> dict[str, bytes]:
    folder = root / "results" / "smoke" / "metrics"
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def local_run(tmp_path_factory) -> Path:
    root = _checkout(tmp_path_factory.mktemp("local") / "repo")
    result = subprocess.run([str(BIN / "snakemake"), "--cores", "2", *_metric_targets(root)], cwd=root, env=_env(),
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return root


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory):
    """The same targets through the SLURM profile; the KILLED training is cancelled with scancel after its first
    checkpoint. Returns (checkout, snakemake's output, cancelled SLURM job id)."""
    root = _checkout(tmp_path_factory.mktemp("slurm_run") / "repo")
    env = _env({"SLURM_CONF": str(cluster / "slurm.conf")})
    proc = subprocess.Popen([str(BIN / "snakemake"), *SLURM_ARGS, *_metric_targets(root)], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    job_logs = root / ".snakemake" / "slurm_logs" / "rule_pretrain" / f"{KILLED}_0"
    checkpoints = root / "runs" / "smoke" / KILLED / "seed0" / "checkpoints"
    cancelled = None
    deadline = time.monotonic() + 900
    while proc.poll() is None and cancelled is None and time.monotonic() < deadline:
        if list(checkpoints.glob("step-*.pt")) and list(job_logs.glob("*.log")):
            cancelled = min(int(p.stem) for p in job_logs.glob("*.log"))
            subprocess.run(["scancel", str(cancelled)], env=env, check=True, timeout=60)
        time.sleep(0.2)
    output = proc.communicate(timeout=max(1, deadline - time.monotonic()))[0]
    assert proc.returncode == 0, output[-4000:]
    return root, output, cancelled, cluster


def test_every_job_is_submitted_with_sbatch(slurm_run):
    root, output, cancelled, cluster = slurm_run
    submitted = re.findall(r"Job \d+ has been submitted with SLURM jobid (\d+)", output)
    # world synthesis, two trainings (one of them twice), one evaluation per metric file; nothing ran in Snakemake
    assert len(submitted) == 1 + 2 + 1 + sum(n.endswith(".json") for n in _metric_files(root)), output[-4000:]
    assert not re.search(r"^localrule (?!target)", output, flags=re.M), "a job ran outside SLURM"
    states = dict(re.findall(r"JobId=(\d+) .*?JobState=(\w+)", (cluster / "jobs.log").read_text()))
    assert {states[j] for j in submitted if j != str(cancelled)} == {"COMPLETED"}, states


def test_a_cancelled_training_is_resubmitted_and_resumes_from_its_checkpoint(slurm_run):
    root, output, cancelled, cluster = slurm_run
    assert cancelled is not None, "the training finished before its checkpoint was seen; nothing was cancelled"
    states = dict(re.findall(r"JobId=(\d+) .*?JobState=(\w+)", (cluster / "jobs.log").read_text()))
    assert states[str(cancelled)] == "CANCELLED"
    # Snakemake names each submission's log after the rule, wildcards and SLURM job id
    attempts = [int(j) for j in re.findall(rf"submitted with SLURM jobid (\d+) \(log: \S*/rule_pretrain/{KILLED}_0/",
                                           output)]
    assert len(attempts) == 2 and attempts[0] == cancelled and states[str(attempts[1])] == "COMPLETED", attempts
    summary = json.loads((root / "runs" / "smoke" / KILLED / "seed0" / "summary.json").read_text())
    assert summary["steps"] == STEPS and summary["resumed_from"], summary


def test_slurm_metric_files_equal_the_local_runs(slurm_run, local_run):
    root = slurm_run[0]
    local, slurm = _metric_files(local_run), _metric_files(root)
    evaluations = sum(name.endswith(".json") for name in local)
    assert evaluations >= 5 and len(local) == 2 * evaluations  # a .json and a _per_class.csv per evaluation
    assert local.keys() == slurm.keys()
    assert [name for name in local if local[name] != slurm[name]] == []
