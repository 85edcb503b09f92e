"""pyproject's requires-python admits no Python the code cannot run on, and the README states the same bound."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]


def _lower_bound() -> Version:
    spec = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    return Version(re.fullmatch(r">=\s*([\d.]+)", spec.strip())[1])


def test_requires_python_covers_tarfile_extraction_filters():
    """Evaluation downloads extract with tarfile's filter="data", which 3.11 gained in 3.11.4."""
    uses_filter = any('filter="data"' in path.read_text() for path in (REPO / "src").rglob("*.py"))
    assert uses_filter and _lower_bound() >= Version("3.11.4"), f"requires-python >= {_lower_bound()}"


def test_readme_states_the_same_python_bound():
    assert f"Python {_lower_bound()} or later" in (REPO / "README.md").read_text()
