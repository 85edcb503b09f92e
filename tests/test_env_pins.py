"""environment.yml and the per-rule conda envs must pin exactly what requirements.lock (pip) installs."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)$")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _lock() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        match = PIN.match(line.strip())
        if match:
            pins[_normal(match[1])] = match[2]
    return pins


def _conda_pip_pins(path: Path) -> dict[str, str]:
    env = yaml.safe_load(path.read_text())
    pins = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict) and "pip" in dep:
            for line in dep["pip"]:
                match = PIN.match(line.strip())
                if match:
                    pins[_normal(match[1])] = match[2]
    return pins


ENV_FILES = [REPO / "environment.yml", *sorted((REPO / "workflow" / "envs").glob("*.yaml"))]


def test_lock_pins_torch_pair():
    lock = _lock()
    assert lock["torch"] == "2.14.1" and lock["torchvision"] == "0.29.1"


@pytest.mark.parametrize("path", [p for p in ENV_FILES if p.name != "img2dataset.yaml"], ids=lambda p: p.name)
def test_env_file_pins_match_lock(path):
    lock, pins = _lock(), _conda_pip_pins(path)
    assert pins, f"{path} pins nothing"
    drift = {name: (version, lock.get(name)) for name, version in pins.items() if lock.get(name) != version}
    assert not drift, f"{path.relative_to(REPO)} disagrees with requirements.lock (env, lock): {drift}"


def test_pyproject_pins_torch_pair():
    text = (REPO / "pyproject.toml").read_text()
    assert '"torch==2.14.1"' in text and '"torchvision==0.29.1"' in text
