"""``fame demo``: the README's first command: does FAME remove background bias? Minutes on a CPU."""

from __future__ import annotations

from pathlib import Path

import typer

from pipelines.demo_settings import DemoSettings  # light: torch loads when the command runs
from pipelines.settings import SettingsError

from .console import console, fail
from .options import defaults, given_options

DEFAULTS = defaults(DemoSettings)


def demo(
    ctx: typer.Context,
    out_dir: Path = typer.Option(Path(DEFAULTS.out_dir), "--out", help="Folder for data, cache, runs and results."),
    seed: int = typer.Option(DEFAULTS.seed, help="Seeds the data, the first pretraining run of each variant and the evaluations."),
    videos_per_class: int = typer.Option(DEFAULTS.videos_per_class, help="Synthetic videos per class (5 classes)."),
    epochs: int = typer.Option(DEFAULTS.epochs, help="Pretraining epochs of each variant."),
    repeats: int = typer.Option(DEFAULTS.repeats, help="Pretraining seeds per variant (SEED, SEED+1, ...): the spread."),
    beta: float = typer.Option(DEFAULTS.beta, help="FAME's foreground share of each crop."),
    device: str = typer.Option(DEFAULTS.device, help="auto|cpu|cuda"),
) -> None:
    """Synthesise data, preprocess, pretrain MoCo and MoCo + FAME, evaluate both, draw the masks, compare.

    The headline is swap-retrieval: how often a test clip's nearest neighbour carries its own
    background (the shortcut) or its own foreground, with chance levels, as mean and spread
    over the pretraining seeds. Prints the comparison (also saved as results.md, results.png
    and results.json in --out) and writes the mask gallery (masks/index.html). A finished
    stage is reused when the command is run again.

    Example: fame demo --out demo-output
    """
    from pipelines.demo import run_demo

    settings = DemoSettings(**given_options(ctx, DemoSettings))
    try:
        settings.validate()
    except SettingsError as error:
        fail(str(error))
    result = run_demo(settings, log=lambda line: console.print(line, highlight=False, markup=False))
    print(result["table"], flush=True)  # plain: a Markdown table must not be re-wrapped
    for name, path in result["files"].items():
        console.print(f"{name}: {path}", markup=False)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
