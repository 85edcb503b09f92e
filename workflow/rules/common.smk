# Helpers shared by the rules: config validation, preset resolution and the target lists.
import sys
from pathlib import Path

from snakemake.utils import validate

# The workflow drives the project's own package; make it importable from a plain checkout too.
sys.path.insert(0, str(Path(workflow.basedir).parent / "src"))
from groupvit.config import ConfigError, resolve_preset, to_dict  # noqa: E402

validate(config, schema="../schemas/config.schema.yaml")

PRESET = config["preset"]
try:
    EXP = resolve_preset(config, PRESET)
except ConfigError as err:
    raise WorkflowError(f"config/config.yaml: {err}") from None

DATA = f"data/{PRESET}"
RESULTS = f"results/{PRESET}"
LOGS = f"logs/{PRESET}"
CONFIG_ARGS = f"--config config/config.yaml --preset {PRESET}"


def digest(section):
    """A short hash of a config section: as a rule param it makes Snakemake rerun the rule when the section changes."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(to_dict(section), sort_keys=True).encode()).hexdigest()[:16]


def world_outputs():
    """The synthetic world's files (the data card marks a complete world)."""
    return [f"{DATA}/synthetic/datacard.json"]


def all_targets():
    targets = []
    if EXP.data.source == "synthetic":
        targets += world_outputs()
    return targets
