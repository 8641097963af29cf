"""The ``fame`` command: one Typer app, one module per subcommand."""

from __future__ import annotations

import typer

from . import demo, evaluate, info, preprocess, pretrain, synth, visualize

app = typer.Typer(
    name="fame",
    help="FAME (Foreground-bAckground MErging) for video representation learning: "
    "preprocess a dataset once, pretrain MoCo + FAME, evaluate, and look at the masks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for module in (synth, preprocess, info, pretrain, evaluate, visualize, demo):
    module.register(app)


def main() -> None:  # pragma: no cover - console script entry
    app()
