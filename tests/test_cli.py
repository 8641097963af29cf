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


@pytest.mark.parametrize("args, says", [
    (["synth", "out", "--classes", "99"], "--classes must be between 1 and 8, got 99"),
    (["demo", "--out", "out", "--repeats", "0"], "repeats must be at least 1, got 0"),
    (["preprocess", "data", "--cache", "c.zarr", "--frame-quality", "0"], "--frame-quality 0: JPEG quality lies in [1, 100]"),
    (["visualize-masks", "--cache", "c.zarr", "--output", "out", "--format", "webm"], "unknown format 'webm'"),
    (["pretrain", "--cache", "c.zarr", "--run-dir", "run", "--schedule", "step"], "schedule 'step' is not one of"),
    (["evaluate", "--cache", "c.zarr", "--config", "absent.toml"], "cannot read the recipe"),
])
def test_a_settings_error_is_one_line_and_exit_status_2(args, says, tmp_path, monkeypatch):
    """Every command checks its settings (``validate()``, ``SettingsError``) before any work."""
    from typer.testing import CliRunner

    from fame_cli.main import app

    monkeypatch.chdir(tmp_path)
    outcome = CliRunner().invoke(app, args)
    assert outcome.exit_code == 2 and "error:" in outcome.output and says in outcome.output, outcome.output
    assert list(tmp_path.iterdir()) == []  # nothing written
