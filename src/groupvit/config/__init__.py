"""One config for the CLI, Snakemake and DVC: typed dataclasses resolved from config/config.yaml."""
from groupvit.dataclass_io import ConfigError, deep_merge, flatten, from_dict, to_dict
from groupvit.config.experiment import (
    DEFAULT_CONFIG,
    SCHEMA_PATH,
    ExperimentConfig,
    StudyConfig,
    VariantConfig,
    load_config,
    read_config_file,
    resolve_preset,
    validate_raw,
)

__all__ = [
    "ConfigError", "deep_merge", "flatten", "from_dict", "to_dict", "DEFAULT_CONFIG", "SCHEMA_PATH",
    "ExperimentConfig", "StudyConfig", "VariantConfig", "load_config", "read_config_file", "resolve_preset",
    "validate_raw",
]
