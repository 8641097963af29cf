"""Every command has help with an example and is documented in docs/cli.md."""

from pathlib import Path

import pytest

from fame_cli.reference import command_names, help_text

DOCS = Path(__file__).parents[1] / "docs" / "cli.md"
EXPECTED = {"synth", "preprocess", "info", "pretrain", "evaluate", "visualize-masks", "demo"}


def test_all_commands_are_registered():
    assert EXPECTED <= set(command_names())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_command_has_help_with_an_example(name):
    text = help_text(name)
    assert "Usage:" in text and "Example:" in text


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_command_is_documented(name):
    assert f"## fame {name}\n" in DOCS.read_text(encoding="utf-8")
