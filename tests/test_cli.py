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


def test_the_cli_and_every_command_help_load_without_torch():
    """`fame --help` and `fame COMMAND --help` stay fast (issue 20: 1.5 s, every command imported
    torch at start-up); benchmarks/bench_help.py times them."""
    import subprocess
    import sys

    probe = ("import sys; from fame_cli.main import app; from fame_cli.reference import help_text; "
             "[help_text(name) for name in sys.argv[1:]]; "
             "heavy = sorted(m for m in ('torch', 'zarr', 'av', 'decord', 'PIL') if m in sys.modules); "
             "print(','.join(heavy))")
    run = subprocess.run([sys.executable, "-c", probe, *sorted(EXPECTED)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "", f"imported at start-up: {run.stdout.strip()}"


def test_evaluate_help_names_the_protocols_the_library_has():
    from fame_cli.evaluate import PROTOCOLS as SHOWN
    from pipelines.evaluate.settings import PROTOCOLS

    assert SHOWN == PROTOCOLS
