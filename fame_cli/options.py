"""Options -> settings, the same way for every command: the settings dataclass holds the
defaults (the options show them in ``--help``), and only the options the user actually gave
are passed on, so a recipe or the dataclass decides everything else."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from types import SimpleNamespace

import typer

# Parameter sources (click's ParameterSource names) of options the user actually gave.
GIVEN = ("COMMANDLINE", "ENVIRONMENT")


def defaults(settings_class: type) -> SimpleNamespace:
    """The dataclass's field defaults as attributes (``DEFAULTS.epochs``), for the options'
    defaults shown in ``--help``; required fields and factories are ``dataclasses.MISSING``."""
    return SimpleNamespace(**{f.name: f.default for f in fields(settings_class)})


def given_options(ctx: typer.Context, settings_class: type) -> dict:
    """``{field: value}`` of the options given on the command line (or in the environment)
    that are fields of ``settings_class``; paths become strings, as the settings hold them."""
    names = {f.name for f in fields(settings_class)}
    given = {
        name: value for name, value in ctx.params.items()
        if name in names and getattr(ctx.get_parameter_source(name), "name", None) in GIVEN
    }
    return {name: str(value) if isinstance(value, Path) else value for name, value in given.items()}
