"""``fame synth``: write a small synthetic dataset (UCF101 layout, ground-truth masks)."""

from __future__ import annotations

from pathlib import Path

import typer

from pipelines.data.synth import SynthSettings, write_dataset
from pipelines.settings import SettingsError

from .console import console, fail, progress_bar
from .options import defaults, given_options

DEFAULTS = defaults(SynthSettings)


def synth(
    ctx: typer.Context,
    out_dir: Path = typer.Argument(..., help="Folder to write the dataset into."),
    classes: int = typer.Option(DEFAULTS.classes, help="Number of motion classes (at most 8)."),
    videos_per_class: int = typer.Option(DEFAULTS.videos_per_class, help="Videos per class."),
    seed: int = typer.Option(DEFAULTS.seed, help="Random seed: the same seed writes the same dataset."),
    frames: int = typer.Option(DEFAULTS.frames, help="Frames per video."),
) -> None:
    """Write a synthetic action dataset whose class is the motion, over unique static backgrounds.

    Example: fame synth demo-data --classes 5 --videos-per-class 20
    """
    settings = SynthSettings(**given_options(ctx, SynthSettings))
    try:
        settings.validate()
    except SettingsError as error:
        fail(str(error))
    total = settings.classes * settings.videos_per_class
    with progress_bar("synth", total) as update:
        root = write_dataset(settings, progress=lambda done, _total: update(done))
    console.print(f"wrote {total} videos to {root} (split lists in {Path(out_dir) / 'ucfTrainTestlist'}, "
                  f"ground truth in {Path(out_dir) / 'ground_truth'})")


def register(app: typer.Typer) -> None:
    app.command("synth")(synth)
