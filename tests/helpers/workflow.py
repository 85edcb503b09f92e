"""A copy of the checkout to run the workflow in, and a finished smoke study to start from (the workflow tests share
one smoke run: each module copies it, times and .snakemake metadata included, so it is up to date there too)."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TOP_LEVEL_SKIP = {".venv", ".git", "data", "runs", "logs", ".snakemake", ".pytest_cache"}



def copy_checkout(dst: Path) -> None:
    def ignore(folder: str, names: list[str]) -> set[str]:
        rel = Path(folder).relative_to(REPO)
        skipped = {n for n in names if n == "__pycache__" or n.endswith(".egg-info")}
        if rel == Path("."):
            skipped |= TOP_LEVEL_SKIP & set(names)
        elif rel == Path(".dvc"):
            skipped |= {"cache", "tmp"} & set(names)
        elif rel == Path("results"):  # committed results a fresh clone has; the presets' results are remade
            skipped |= {n for n in names if (Path(folder) / n).is_dir() and n not in ("benchmarks", "studies")}
        return skipped

    shutil.copytree(REPO, dst, ignore=ignore, symlinks=True)
    (dst / "data").mkdir(exist_ok=True)
    shutil.copy(REPO / "data" / "README.md", dst / "data" / "README.md")


def run(cmd: list[str], cwd: Path, timeout: int = 600) -> str:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHONHASHSEED": "0"}
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{output[-4000:]}"
    return output


def run_json(cmd: list[str], cwd: Path) -> object:
    """A command's stdout as JSON (warnings go to stderr)."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stderr[-4000:]}"
    return json.loads(result.stdout)



GIT = ["git", "-c", "user.email=ci@example.invalid", "-c", "user.name=ci"]


def make_smoke_study(root: Path) -> Path:
    """A copy of the checkout at `root`, set to the smoke preset, committed to a fresh git repo, with the whole smoke
    study run (about a minute on 2 cores)."""
    copy_checkout(root)
    config = root / "config" / "config.yaml"
    config.write_text(re.sub(r"^preset: \w+", "preset: smoke", config.read_text(), flags=re.M))
    run(["git", "init", "-q"], root)
    run([*GIT, "add", "-A"], root)
    run([*GIT, "commit", "-qm", "smoke"], root)
    run(["snakemake", "--cores", "2"], root, timeout=900)
    return root


def copy_study(template: Path, dst: Path) -> Path:
    """An independent copy of a finished study (file times kept, so Snakemake finds it up to date)."""
    shutil.copytree(template, dst, symlinks=True)
    return dst
