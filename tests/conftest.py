"""Makes the test-only helpers (tests/helpers/) importable as `helpers.*`, whatever pytest's import mode, and runs
the smoke study once for the workflow tests."""
import sys
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))


@pytest.fixture(scope="session")
def smoke_study(tmp_path_factory) -> Path:
    """The smoke study run once in a copy of the checkout; workflow tests copy it (helpers.workflow.copy_study)."""
    from helpers.workflow import make_smoke_study

    return make_smoke_study(tmp_path_factory.mktemp("smoke_study") / "repo")
