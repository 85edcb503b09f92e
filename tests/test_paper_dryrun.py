"""The paper preset is plannable on a cluster: a dry run through the SLURM profile lists the eval-data downloads, one
8-GPU pretraining job and one 1-GPU evaluation per dataset.

A dry run needs no cluster: it keeps the profile's settings (resources, jobs, ...) but overrides its
`executor: slurm` with `--executor local` (tests/test_workflow_slurm.py submits to a real one-node cluster). workflow/profiles/default (the workflow profile, which
Snakemake applies on top of --profile) must not cap the 8-GPU job. The eval root points at an empty folder so the
download jobs appear whatever is on this machine.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "workflow" / "profiles" / "slurm"


def _dry_run(eval_root: Path) -> list[dict]:
    cmd = [sys.executable, "-m", "snakemake", "-n", "-p", "--profile", str(PROFILE), "--executor", "local", "--config", "preset=paper",
           f"presets={{paper: {{eval_data: {{root: {eval_root}}}}}}}"]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    jobs, job = [], None
    for line in (result.stdout + result.stderr).splitlines():
        head = re.match(r"^(?:local)?rule (\w+):$", line)
        if head:
            job = {"rule": head.group(1)}
            jobs.append(job)
            continue
        field = re.match(r"^    (input|output|wildcards|resources): (.*)$", line)
        if job is not None and field:
            key, value = field.groups()
            if key in ("wildcards", "resources"):
                job[key] = dict(kv.split("=", 1) for kv in value.split(", "))
            else:
                job[key] = value.split(", ")
        elif job is not None and "groupvit train" in line:
            job["shell"] = line.strip().removeprefix("Shell command: ")
    return jobs


def test_slurm_profile_declares_gpu_resources():
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    assert profile["executor"] == "slurm"
    assert profile["set-resources"]["pretrain"]["gpu"] == 8
    assert profile["set-resources"]["evaluate"]["gpu"] == 1
    # one GPU's share of the CPUs as torch threads per process, not half of whatever --cores the submit host has
    assert profile["set-threads"] == {"pretrain": profile["set-resources"]["pretrain"]["cpus_per_gpu"],
                                      "evaluate": profile["set-resources"]["evaluate"]["cpus_per_gpu"]}


def test_paper_preset_dry_run_through_slurm_profile(tmp_path):
    eval_root = tmp_path / "real"
    jobs = _dry_run(eval_root)
    by_rule: dict[str, list[dict]] = {}
    for job in jobs:
        by_rule.setdefault(job["rule"], []).append(job)

    pretrain = by_rule["pretrain"]
    assert len(pretrain) == 1 and pretrain[0]["wildcards"] == {"variant": "groupvit_2stage", "seed": "0"}
    assert pretrain[0]["resources"]["gpu"] == "8" and pretrain[0]["resources"]["runtime"] == "4320"
    # the job's 8 GPUs are used: one DDP process per GPU
    # (torch threads from the profile's set-threads, which the local executor of this dry run caps at its cores)
    assert re.match(r"OMP_NUM_THREADS=\d+ torchrun --standalone --nproc_per_node 8 --no-python groupvit train",
                    pretrain[0]["shell"]), pretrain[0]["shell"]

    evaluate = by_rule["evaluate"]
    assert sorted(j["wildcards"]["dataset"] for j in evaluate) == ["coco_object", "context", "voc"]
    assert all(j["resources"]["gpu"] == "1" for j in evaluate)

    downloads = by_rule["download_eval_dataset"]
    markers = {j["wildcards"]["evalfolder"]: j["output"][0] for j in downloads}
    assert markers == {name: str(eval_root / name / ".groupvit-ready.json") for name in ("voc", "context", "coco")}
    assert all("gpu" not in j["resources"] for j in downloads)
    folder = {"voc": "voc", "context": "context", "coco_object": "coco"}
    for job in evaluate:  # each evaluation waits for its own dataset
        assert markers[folder[job["wildcards"]["dataset"]]] in job["input"]
    # the pretraining pairs are downloaded first, and the rest of the study is planned too
    assert sorted(j["wildcards"]["pairs"] for j in by_rule["download_pairs"]) == ["cc12m", "cc3m", "yfcc14m"]
    assert {"tables", "report", "all"} <= set(by_rule)


def test_present_data_needs_no_download(tmp_path):
    """With the datasets in place (ready markers), the DAG has no download job and evaluate reads the data as is."""
    eval_root = tmp_path / "real"
    for name in ("voc", "context", "coco"):
        (eval_root / name).mkdir(parents=True)
        (eval_root / name / ".groupvit-ready.json").write_text("{}\n")
    rules = [job["rule"] for job in _dry_run(eval_root)]
    assert "download_eval_dataset" not in rules and rules.count("evaluate") == 3


def test_download_rule_runs_on_the_submit_host():
    """Compute nodes often have no internet: the download is a localrule under any cluster executor."""
    text = (REPO / "workflow" / "rules" / "download_eval.smk").read_text()
    assert re.search(r"^localrules:\n    download_eval_dataset,", text, re.M)
