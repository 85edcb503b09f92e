"""The one config: presets resolve, bad input stops with the key path, schema and dataclasses stay in step."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from groupvit.config import ConfigError, load_config, read_config_file, resolve_preset, to_dict
from groupvit.config.experiment import VariantConfig, load_schema
from groupvit.data.config import AugmentConfig, DataConfig
from groupvit.data.world.config import CaptionConfig, WorldConfig
from groupvit.evaluation.config import EvalConfig
from groupvit.model.config import ImageEncoderConfig, ModelConfig, TextEncoderConfig
from groupvit.train.config import LossConfig, TrainConfig

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "config" / "config.yaml"


def _write(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _raw() -> dict:
    return yaml.safe_load(CONFIG.read_text())


@pytest.mark.parametrize("preset", ["smoke", "default", "paper"])
def test_every_preset_and_variant_resolves(preset):
    cfg = load_config(CONFIG, preset)
    assert cfg.preset == preset
    for name in cfg.study.variants:
        variant = cfg.for_variant(name, seed=7)
        assert variant.train.seed == 7


def test_paper_preset_keeps_cpu_deviations_off():
    paper = load_config(CONFIG, "paper")
    assert paper.model == ModelConfig(), "the paper preset must use the paper architecture (dataclass defaults)"
    assert paper.train == TrainConfig()
    default = load_config(CONFIG, "default")
    assert default.model.image.stem == "conv" and paper.model.image.stem == "linear"


def test_smoke_extends_default():
    smoke, default = load_config(CONFIG, "smoke"), load_config(CONFIG, "default")
    assert smoke.model == default.model
    assert smoke.train.steps < default.train.steps


def test_variant_overrides_apply_only_to_that_variant():
    cfg = load_config(CONFIG, "default")
    one = cfg.for_variant("groupvit_1stage")
    assert one.model.image.num_output_groups == [8]
    assert cfg.model.image.num_output_groups == [16, 8]
    soft = cfg.for_variant("groupvit_2stage_soft")
    assert soft.model.image.hard_assignment is False


def test_a_variant_may_have_its_own_seeds(tmp_path):
    """The headline models can get more seeds than the ablations: the DAG trains exactly those (variant, seed)s."""
    raw = yaml.safe_load(CONFIG.read_text())
    raw["presets"]["default"]["variants"]["groupvit_1stage"]["seeds"] = [3, 4]
    raw["presets"]["default"]["study"]["seeds"] = [0]
    cfg_path = tmp_path / "config.yaml"
    cfg_path.write_text(yaml.safe_dump(raw))
    cfg = load_config(cfg_path, "default")
    assert cfg.seeds_of("groupvit_1stage") == [3, 4] and cfg.seeds_of("groupvit_2stage_soft") == [0]
    repo = CONFIG.parents[1]
    plan = subprocess.run(["snakemake", "-n", "--configfile", str(cfg_path), "--cores", "1"], cwd=repo,
                          capture_output=True, text=True, timeout=120)
    assert plan.returncode == 0, plan.stderr[-2000:]
    for seed in ("3", "4"):
        assert f"runs/default/groupvit_1stage/seed{seed}/model.pt" in plan.stdout
    assert "runs/default/groupvit_1stage/seed0/" not in plan.stdout


def test_bad_enum_value_names_key_path_and_allowed_values(tmp_path):
    raw = _raw()
    raw["presets"]["default"]["train"]["precision"] = "fp16"
    with pytest.raises(ConfigError) as err:
        read_config_file(_write(tmp_path, raw))
    message = str(err.value)
    assert "presets.default.train.precision" in message
    assert "fp32" in message and "bf16" in message


def test_unknown_key_is_named_with_valid_keys(tmp_path):
    raw = _raw()
    raw["presets"]["default"]["model"]["image"]["depth"] = [1]
    with pytest.raises(ConfigError) as err:
        read_config_file(_write(tmp_path, raw))
    assert "presets.default.model.image" in str(err.value) and "depths" in str(err.value)


def test_wrong_type_is_rejected(tmp_path):
    raw = _raw()
    raw["presets"]["smoke"]["train"]["steps"] = "many"
    with pytest.raises(ConfigError, match=r"presets\.smoke\.train\.steps"):
        read_config_file(_write(tmp_path, raw))


def test_unknown_preset_lists_valid_ones():
    with pytest.raises(ConfigError, match=r"valid presets: \['default', 'paper', 'quick', 'rehearsal', 'smoke'\]"):
        load_config(CONFIG, "nope")


def test_unknown_variant_in_study_is_rejected(tmp_path):
    raw = _raw()
    raw["presets"]["default"]["study"]["variants"] = ["groupvit_2stage", "typo_variant"]
    with pytest.raises(ConfigError, match="typo_variant.*valid variants"):
        load_config(_write(tmp_path, raw), "default")


def test_cross_field_rules(tmp_path):
    with pytest.raises(ConfigError, match="image_size"):
        resolve_preset(_raw(), "default", ["model.image.patch_size=5"])
    with pytest.raises(ConfigError, match="num_output_groups"):
        resolve_preset(_raw(), "default", ["model.image.num_output_groups=[16]"])


def test_overrides_are_schema_checked():
    cfg = resolve_preset(_raw(), "smoke", ["train.steps=3", "world.classes=[circle, star]"])
    assert cfg.train.steps == 3 and cfg.world.classes == ["circle", "star"]
    with pytest.raises(ConfigError, match=r"train\.nonfinite"):
        resolve_preset(_raw(), "smoke", ["train.nonfinite=ignore"])


def test_extends_cycle_is_reported(tmp_path):
    raw = _raw()
    raw["presets"]["default"]["extends"] = "smoke"
    with pytest.raises(ConfigError, match="cycle"):
        resolve_preset(raw, "smoke")


def _fields_by_schema_def() -> dict[str, type]:
    return {
        "world": WorldConfig, "caption": CaptionConfig, "data": DataConfig, "augment": AugmentConfig,
        "model": ModelConfig, "image_encoder": ImageEncoderConfig, "text_encoder": TextEncoderConfig,
        "train": TrainConfig, "loss": LossConfig, "eval": EvalConfig, "variant": VariantConfig,
    }


@pytest.mark.parametrize("definition, cls", sorted(_fields_by_schema_def().items()))
def test_schema_and_dataclasses_agree(definition, cls):
    """A field added to a dataclass but not to the schema (or the reverse) could never be set from the file."""
    props = set(load_schema()["$defs"][definition]["properties"])
    fields = {f.name for f in dataclasses.fields(cls)}
    assert props == fields, f"schema $defs.{definition} vs {cls.__name__}: {sorted(props ^ fields)}"


def test_dataclass_defaults_pass_the_schema():
    """The paper defaults themselves are valid values (e.g. enum members), section by section."""
    import jsonschema

    schema = load_schema()
    defaults = {"world": WorldConfig(), "data": DataConfig(), "model": ModelConfig(), "train": TrainConfig(),
                "eval": EvalConfig()}
    for name, obj in defaults.items():
        jsonschema.validate(to_dict(obj), {"$ref": f"#/$defs/{name}", "$defs": schema["$defs"]})


def test_cli_reports_config_errors_with_exit_code_2(tmp_path):
    raw = _raw()
    raw["presets"]["default"]["eval"]["mode"] = "tiles"
    path = _write(tmp_path, raw)
    result = subprocess.run(
        [sys.executable, "-m", "groupvit.cli", "config", "validate", "--config", str(path)],
        capture_output=True, text=True,
    )
    assert result.returncode == 2
    assert "presets.default.eval.mode" in result.stderr and "'slide'" in result.stderr
