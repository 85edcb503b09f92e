"""The experiment config: one YAML file (config/config.yaml) read by the CLI, Snakemake and DVC alike.

The file holds named presets. A preset may `extends:` another; the chain is applied on top of the dataclass
defaults, which are the paper's settings. Each preset declares its variants (ablations) as overrides of its own
model/train/data/eval sections, and a study: which variants and seeds the workflow trains and evaluates.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from groupvit.dataclass_io import ConfigError, deep_merge, from_dict, to_dict
from groupvit.data.config import DataConfig
from groupvit.data.pairs.config import PairsConfig
from groupvit.data.world.config import WorldConfig
from groupvit.data.world.rules import check_world_rules
from groupvit.evaluation.config import EvalConfig
from groupvit.evaluation.download.config import EvalDataConfig
from groupvit.model.config import ModelConfig
from groupvit.model.rules import check_model_rules
from groupvit.train.config import TrainConfig

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_CONFIG = REPO_ROOT / "config" / "config.yaml"
SCHEMA_PATH = Path(__file__).resolve().parent / "config.schema.yaml"
VARIANT_SECTIONS = ("model", "train", "data", "eval")  # the world is shared by every variant of a study


@dataclass
class VariantConfig:
    """One trained model of a study: overrides of the preset's sections, plus how it groups at evaluation."""

    description: str = ""
    # groupvit: learned grouping; vit: plain ViT scored with the non-parametric `groupers` below
    family: str = "groupvit"
    groupers: list[str] = field(default_factory=list)  # vit only: pixelwise | kmeans | meanshift | spectral
    overrides: dict = field(default_factory=dict)  # {section: {key: value}}, sections: model, train, data, eval
    seeds: list[int] = field(default_factory=list)  # this variant's seeds; empty = the study's seeds


@dataclass
class StudyConfig:
    main_variant: str = "groupvit_2stage"
    variants: list[str] = field(default_factory=lambda: ["groupvit_2stage"])
    seeds: list[int] = field(default_factory=lambda: [0])


@dataclass
class ExperimentConfig:
    preset: str = "paper"
    description: str = ""
    world: WorldConfig = field(default_factory=WorldConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    variants: dict[str, VariantConfig] = field(default_factory=dict)
    study: StudyConfig = field(default_factory=StudyConfig)
    eval_data: EvalDataConfig = field(default_factory=EvalDataConfig)  # real eval sets: root, pins
    pairs: PairsConfig = field(default_factory=PairsConfig)  # pretraining pairs: lists -> shards

    @property
    def data_dir(self) -> Path:
        """Everything generated or downloaded for this preset (relative to the working directory)."""
        return Path("data") / self.preset

    @property
    def results_dir(self) -> Path:
        return Path("results") / self.preset

    def seeds_of(self, name: str) -> list[int]:
        """The seeds a study trains `name` with: its own list, else the study's (more seeds for the models the
        headline comparison rests on, one for the ablations, when CPU time is short)."""
        return list(self.variants[name].seeds or self.study.seeds)

    def for_variant(self, name: str, seed: int | None = None) -> "ExperimentConfig":
        """The config one training run sees: the variant's overrides applied, the seed set."""
        if name not in self.variants:
            raise ConfigError(
                f"variant {name!r} is not declared in preset {self.preset!r}; valid variants: {sorted(self.variants)}"
            )
        raw = to_dict(self)
        overrides = self.variants[name].overrides
        for section, values in overrides.items():
            raw[section] = deep_merge(raw[section], values)
        if seed is not None:
            raw["train"]["seed"] = seed
        return _build(raw, where=f"variants.{name}.overrides")

    def to_dict(self) -> dict:
        return to_dict(self)

    def run_dict(self) -> dict:
        """to_dict() without the study's plan (its variants and seeds): what one run stores with its weights, so that
        adding a variant to the study leaves every other run's checkpoint the same, byte for byte."""
        raw = to_dict(self)
        for section in ("variants", "study"):
            raw.pop(section)
        return raw


def _build(raw: dict, where: str = "") -> ExperimentConfig:
    variants_raw = raw.pop("variants", {}) or {}
    try:
        cfg = from_dict(ExperimentConfig, raw)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}" if where else str(err)) from None
    cfg.variants = {
        name: from_dict(VariantConfig, spec or {}, f"variants.{name}") for name, spec in variants_raw.items()
    }
    _check_semantics(cfg)
    return cfg


def _check_semantics(cfg: ExperimentConfig) -> None:
    """The one check of the rules between fields that the JSON schema (types, allowed values, ranges) cannot
    express; it runs on every resolved preset and variant."""
    for name, variant in cfg.variants.items():
        bad = sorted(set(variant.overrides) - set(VARIANT_SECTIONS))
        if bad:
            raise ConfigError(
                f"variants.{name}.overrides: section(s) {bad} cannot differ between variants; "
                f"allowed sections: {list(VARIANT_SECTIONS)} (the world is shared by a study)"
            )
    for name in cfg.study.variants + [cfg.study.main_variant]:
        if name not in cfg.variants:
            raise ConfigError(
                f"study: variant {name!r} is not declared under variants; valid variants: {sorted(cfg.variants)}"
            )
    # The model's and the world's rules live with them (their libraries check them again when used alone).
    for section, check in (("model", check_model_rules), ("world", check_world_rules)):
        try:
            check(getattr(cfg, section))
        except ValueError as err:
            raise ConfigError(str(err)) from None


def _format_schema_error(err: Any) -> str:
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.absolute_path).lstrip(".") or "<top level>"
    message = err.message
    if err.validator == "enum":
        message = f"{err.instance!r} is not allowed; allowed values: {err.validator_value}"
    elif err.validator == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        message = f"{err.message}; valid keys are {allowed}"
    return f"{path}: {message}"


@functools.lru_cache(maxsize=1)
def load_schema() -> dict:
    with open(SCHEMA_PATH) as handle:
        return yaml.safe_load(handle)


def validate_raw(raw: dict, source: str = "config", definition: str | None = None) -> None:
    """Check a whole config file (or, with `definition`, one part such as a resolved preset) against the JSON
    schema; raise ConfigError naming the key path and the allowed values."""
    import jsonschema

    schema = load_schema()
    if definition is not None:
        schema = {"$ref": f"#/$defs/{definition}", "$defs": schema["$defs"]}
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(raw), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        lines = "\n  ".join(_format_schema_error(e) for e in errors[:5])
        raise ConfigError(f"{source} does not match the schema {SCHEMA_PATH.name}:\n  {lines}")


def _parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected KEY.PATH=VALUE, e.g. train.steps=100")
    key, value = text.split("=", 1)
    return key.strip().split("."), yaml.safe_load(value)


def resolve_preset(raw: dict, preset: str, overrides: list[str] | tuple[str, ...] = ()) -> ExperimentConfig:
    """Apply the preset chain (and KEY.PATH=VALUE overrides) to the paper defaults."""
    presets = raw.get("presets", {})
    if preset not in presets:
        raise ConfigError(f"preset: {preset!r} is not defined; valid presets: {sorted(presets)}")
    chain, name = [], preset
    while name is not None:
        if name in chain:
            raise ConfigError(f"presets.{name}.extends: cycle {chain + [name]}")
        if name not in presets:
            raise ConfigError(f"presets.{chain[-1]}.extends: {name!r} is not defined; valid presets: {sorted(presets)}")
        chain.append(name)
        name = presets[name].get("extends")
    merged: dict = {}
    for name in reversed(chain):
        body = {k: v for k, v in presets[name].items() if k != "extends"}
        merged = deep_merge(merged, body)
    for text in overrides:
        keys, value = _parse_override(text)
        node = merged
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    if overrides:
        validate_raw(merged, source=f"preset {preset!r} with overrides {list(overrides)}", definition="preset")
    merged["preset"] = preset
    return _build(merged)


def read_config_file(path: str | Path = DEFAULT_CONFIG) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config file not found; the project's config lives at config/config.yaml")
    with open(path) as handle:
        try:
            raw = yaml.safe_load(handle) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {err}") from None
    validate_raw(raw, source=str(path))
    return raw


def load_config(
    path: str | Path = DEFAULT_CONFIG, preset: str | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> ExperimentConfig:
    """Read, validate and resolve the config file: the entry point for the CLI and the workflow."""
    raw = read_config_file(path)
    return resolve_preset(raw, preset or raw.get("preset", "default"), overrides)


__all__ = [
    "ConfigError", "ExperimentConfig", "StudyConfig", "VariantConfig", "load_config", "read_config_file",
    "resolve_preset", "validate_raw", "DEFAULT_CONFIG", "SCHEMA_PATH",
]

