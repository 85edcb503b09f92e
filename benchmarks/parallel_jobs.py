"""One training job with all the cores, or two jobs with half of them each: which trains more samples per second?

    .venv/bin/python benchmarks/parallel_jobs.py [--steps 60] [--rounds 2]

The workflow gives every training and evaluation job half of `--cores` (workflow/rules/common.smk, JOB_THREADS) so
that two jobs share a small machine. This measures that choice on the `default` preset's main model with the real
engine and loader (`groupvit.train.train`, one loader worker per job, over a small generated world):
  single: one job, torch threads = all cores;
  pair:   two jobs at once, torch threads = cores // 2 each; their samples/s are summed.
The two modes alternate `--rounds` times, so drift in the machine's load hits both. Threads are set through
OMP_NUM_THREADS, as the workflow does. Writes results/benchmarks/parallel_jobs.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def overrides(steps: int) -> list[str]:
    return ["world.num_train=1024", "world.num_val=2", "world.num_eval=2", "world.shard_size=256",
            "data.num_workers=1", f"train.steps={steps}", "train.warmup_steps=5", "train.log_every=10",
            f"train.checkpoint_every={steps}"]


def worker(world: Path, out: Path, steps: int) -> None:
    """Train in this process and write its end-to-end samples/s (everything inside the training loop)."""
    from groupvit.config import load_config
    from groupvit.train import train

    cfg = load_config(REPO / "config" / "config.yaml", "default", overrides(steps)).for_variant("groupvit_2stage", 0)
    summary = train(cfg, out.with_suffix(""), variant="groupvit_2stage", data_dir=world, resume=False)
    out.write_text(json.dumps({"samples_per_s": summary["samples_seen"] / summary["train_time_s"]}))


def run_jobs(world: Path, tmp: Path, jobs: int, threads: int, steps: int, tag: str) -> list[float]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    outs = [tmp / f"{tag}-{i}.json" for i in range(jobs)]
    procs = [subprocess.Popen([sys.executable, __file__, "--worker", str(world), str(out), "--steps", str(steps)],
                              env=env, stdout=subprocess.DEVNULL) for out in outs]
    for proc in procs:
        if proc.wait() != 0:
            raise SystemExit(f"a benchmark job failed (exit {proc.returncode})")
    return [json.loads(out.read_text())["samples_per_s"] for out in outs]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=REPO / "results" / "benchmarks" / "parallel_jobs.json")
    parser.add_argument("--worker", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(*args.worker, args.steps)
        return {}
    if args.cores < 2:
        raise SystemExit("needs at least 2 cores to compare one job with two")

    from groupvit.atomic import atomic_write_json
    from groupvit.config import load_config
    from groupvit.data.world.generate import generate_world

    single, pair = [], []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        world = tmp / "synthetic"
        generate_world(load_config(REPO / "config" / "config.yaml", "default", overrides(args.steps)).world, world,
                       workers=0, progress=False)
        for r in range(args.rounds):
            start = time.perf_counter()
            single.append(sum(run_jobs(world, tmp, 1, args.cores, args.steps, f"single{r}")))
            pair.append(sum(run_jobs(world, tmp, 2, args.cores // 2, args.steps, f"pair{r}")))
            print(f"round {r}: single {single[-1]:.0f} samples/s, pair {pair[-1]:.0f} samples/s "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
    result = {
        "benchmark": "parallel_jobs",
        "command": " ".join(["python benchmarks/parallel_jobs.py", *(argv if argv is not None else sys.argv[1:])]),
        "cores": args.cores, "steps_per_job": args.steps,
        "single_job_samples_per_s": [round(x, 1) for x in single],
        "two_jobs_total_samples_per_s": [round(x, 1) for x in pair],
        "ratio_two_jobs_over_single": round(sum(pair) / sum(single), 3),
        "load_average_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    atomic_write_json(result, args.out)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
