"""The ``fame`` command: one Typer app, one module per subcommand."""

from __future__ import annotations

import sys

import typer

from . import demo, evaluate, info, preprocess, pretrain, synth, visualize
from .errors import user_message


class FameTyper(typer.Typer):
    """The app: an error the user can fix that a command did not catch ends as one line and
    exit status 2 (``fame_cli.errors``); a bug keeps its traceback."""

    def __call__(self, *args, **kwargs):
        try:
            return super().__call__(*args, **kwargs)
        except Exception as error:
            message = user_message(error)
            if message is None:
                raise
            from .console import console

            from rich.markup import escape

            console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
            sys.exit(2)


app = FameTyper(
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
