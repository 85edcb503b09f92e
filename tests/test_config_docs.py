"""config/README.md documents every key a preset may set, generated from the schema, and never goes stale."""
from __future__ import annotations

import copy

import yaml

from groupvit.cli import main
from groupvit.config import SCHEMA_PATH
from groupvit.config.docs import DOCS_PATH, REGENERATE, config_rows, render_config_docs


def test_committed_config_readme_is_what_the_schema_generates():
    committed = DOCS_PATH.read_text() if DOCS_PATH.exists() else ""
    assert committed == render_config_docs(), (
        f"{DOCS_PATH} is out of date with src/groupvit/config/config.schema.yaml or the config dataclasses; "
        f"regenerate it with `{REGENERATE}`")


def test_every_schema_entry_has_a_description():
    missing = [row.key for row in config_rows() if not row.description]
    assert not missing, f"{SCHEMA_PATH}: add a `description:` to the entries of {missing}"


def test_a_schema_change_shows_in_the_docs():
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    changed = copy.deepcopy(schema)
    changed["$defs"]["train"]["properties"]["precision"]["enum"].append("fp8")
    rows = {row.key: row for row in config_rows(changed)}
    assert "`fp8`" in rows["train.precision"].allowed
    assert render_config_docs(changed) != render_config_docs(schema)


def test_docs_list_nested_keys_with_types_and_defaults():
    rows = {row.key: row for row in config_rows()}
    assert rows["model.image.embed_dim"].type == "integer" and rows["model.image.embed_dim"].default == "`384`"
    assert rows["world.max_occlusion"].allowed == "0 to 1"
    assert "variants.<name>.family" in rows and "pairs.datasets[].url_list" in rows


def test_cli_check_passes_on_the_committed_file(capsys):
    assert main(["config", "docs", "--check"]) == 0
