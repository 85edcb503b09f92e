"""Conda deployment of the workflow: the env installs the checkout wherever Snakemake keeps its envs, and a machine
without conda gets one line that says so."""
from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
ENV_FILE = REPO / "workflow" / "envs" / "groupvit.yaml"


def _readme_venv_command() -> str:
    """The pip-venv setup of the README's first command (everything before the snakemake call)."""
    block = re.search(r"```bash\n(.+?)\n```", (REPO / "README.md").read_text(), re.S)[1]
    return block.split(" && snakemake")[0]


def _path_without_conda() -> str:
    keep = [d for d in os.environ["PATH"].split(os.pathsep)
            if d and not any(Path(d, exe).exists() for exe in ("conda", "mamba", "micromamba"))]
    return os.pathsep.join([str(Path(sys.executable).parent), *keep])


def test_env_file_has_no_relative_pip_path():
    """A path in the env file would resolve against Snakemake's copy of it under the conda prefix."""
    env = yaml.safe_load(ENV_FILE.read_text())
    pip = next(dep["pip"] for dep in env["dependencies"] if isinstance(dep, dict) and "pip" in dep)
    not_pins = [line for line in pip if not re.fullmatch(r"[A-Za-z0-9_.\-]+==\S+", line)]
    assert not not_pins, f"{ENV_FILE.relative_to(REPO)}: pip entries other than name==version pins: {not_pins}"


def test_snakemake_finds_the_post_deploy_script():
    from snakemake.sourcecache import LocalSourceFile

    script = LocalSourceFile(str(ENV_FILE)).replace_suffix([".yaml", ".yml"], ".post-deploy.sh")
    assert script is not None and Path(script.get_path_or_uri(secret_free=True)).is_file()


def test_post_deploy_installs_the_checkout_into_the_env(tmp_path):
    """Run the script as Snakemake does (inside the env, in its working directory) with an env far from the checkout;
    a venv stands in for the conda env."""
    env_dir = tmp_path / "elsewhere" / "conda" / "0123abcd"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / "bin"
    shell_env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "VIRTUAL_ENV": str(env_dir),
                 "PIP_NO_INDEX": "1", "PIP_NO_BUILD_ISOLATION": "0", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    # the editable build runs without isolation and offline: it takes this interpreter's setuptools
    tools = tmp_path / "build-tools"
    tools.mkdir()
    for module in ("setuptools", "_distutils_hack"):
        (tools / module).symlink_to(Path(importlib.import_module(module).__file__).parent)
    shell_env["PYTHONPATH"] = str(tools)
    script = tmp_path / "elsewhere" / "conda" / "0123abcd.post-deploy.sh"  # where Snakemake copies it
    shutil.copy(ENV_FILE.with_name("groupvit.post-deploy.sh"), script)
    done = subprocess.run(["bash", str(script)], cwd=REPO, env=shell_env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    shell_env.pop("PYTHONPATH")
    where = subprocess.run([str(bin_dir / "python"), "-c", "import groupvit; print(groupvit.__file__)"],
                           cwd=tmp_path, env=shell_env, capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).resolve().is_relative_to(REPO / "src"), where
    assert (bin_dir / "groupvit").is_file()


def test_post_deploy_refuses_a_directory_that_is_not_the_checkout(tmp_path):
    done = subprocess.run(["bash", str(ENV_FILE.with_name("groupvit.post-deploy.sh"))], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "is not the groupvit-repro checkout; run snakemake from the checkout" in done.stderr


@pytest.mark.parametrize("flag", [["--use-conda"], ["--sdm", "conda"]], ids=["use-conda", "sdm-conda"])
def test_conda_flag_without_conda_stops_with_one_line(flag):
    env = {**os.environ, "PATH": _path_without_conda()}
    done = subprocess.run([sys.executable, "-m", "snakemake", "-n", *flag, "--cores", "1"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    out = done.stdout + done.stderr
    assert done.returncode != 0, out
    lines = [line for line in out.splitlines() if "conda" in line and not line.startswith("Using workflow")]
    assert len(lines) == 1, out
    assert "needs the `conda` command, which is not on PATH" in lines[0]
    assert _readme_venv_command() in lines[0], f"the line must give the README's pip venv setup: {lines[0]}"
