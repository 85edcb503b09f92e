"""Every `groupvit ...` command that an error message, help text or docstring in src/ tells a user to run exists."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from groupvit.cli import main

SRC = Path(__file__).resolve().parents[1] / "src" / "groupvit"
# `groupvit CMD ...` in backticks or parentheses, or at the start of a line (usage lines in docstrings); the command is
# the run of lower-case words before the first option or placeholder.
COMMAND = re.compile(r"(?:`|\(|^[ \t]*)groupvit((?: [a-z][a-z0-9-]*)+)", re.MULTILINE)


def named_commands() -> dict[str, str]:
    """{command words: first file:line naming them} over the package's source."""
    found: dict[str, str] = {}
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text()
        for match in COMMAND.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.setdefault(match.group(1).strip(), f"{path.relative_to(SRC.parent)}:{line}")
    return found


def test_the_scan_finds_the_commands_messages_name():
    commands = named_commands()
    assert {"synth", "train", "download-eval", "evaluate"} <= set(commands), commands


@pytest.mark.parametrize("command", sorted(named_commands()))
def test_named_command_exists(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command.split(), "--help"])
    assert exit_info.value.code == 0, (
        f"`groupvit {command}` (named at {named_commands()[command]}) is not a command: "
        f"{capsys.readouterr().err.strip()}"
    )
