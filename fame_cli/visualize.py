"""``fame visualize-masks``: contact sheets, animations and an HTML page of the masks and merged clips."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import typer

from pipelines.visualize.settings import FORMATS, VisualizeSettings  # light: torch loads when the command runs

from .console import console, fail, progress_bar
from .options import GIVEN, defaults, given_options

DEFAULTS = defaults(VisualizeSettings)


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def visualize_masks(
    ctx: typer.Context,
    cache: Path = typer.Option(..., "--cache", help="The cache written by `fame preprocess`."),
    output: Path = typer.Option(..., "--output", help="Folder for index.html, the pictures and the reports."),
    videos: list[str] = typer.Option([], "--videos", help="Video ids or paths below the dataset root "
                                     "(repeat the option, or separate with commas). Default: a sample."),
    sample: int = typer.Option(DEFAULTS.sample, help="Without --videos: how many videos to draw, spread over the classes."),
    split: str = typer.Option(DEFAULTS.split, help="Draw the sample from this split (train, test, ...; all: every video)."),
    fold: int = typer.Option(DEFAULTS.fold, help="Fold of the split on datasets with several (UCF101, HMDB51)."),
    output_format: str = typer.Option(DEFAULTS.format, "--format",
                                      help=f"{'|'.join(FORMATS)}: contact sheets only, or also an animation."),
    beta: str = typer.Option(str(DEFAULTS.beta), help="Share of the frame kept as foreground (FAME's beta), or auto: fitted to "
                             "each clip's soft map."),
    compare: list[str] = typer.Option([], "--compare", help="Other mask methods (motion, adaptive, paper, "
                                      "frame-difference, translation-difference, centre; repeat or separate with commas) computed from the cached frames and "
                                      "shown and scored beside the cache's own."),
    seed: int = typer.Option(DEFAULTS.seed, help="Seed of the sample and of which video lends its background to which."),
    clip_len: int | None = typer.Option(None, help="Frames per clip (default: the cache's mask window)."),
    stride: int | None = typer.Option(None, help="Frames between clip frames (default: the cache's mask stride)."),
    columns: int = typer.Option(DEFAULTS.columns, help="Frames per row of a contact sheet."),
    ground_truth: Path | None = typer.Option(None, help="Folder of true foreground masks (see docs/visualize.md); "
                                             "default: found automatically for `fame synth` data."),
    checkpoint: Path | None = typer.Option(None, help="A checkpoint (ours, an official FAME release or a state "
                                          "dict): adds the encoder's activation maps."),
    device: str = typer.Option(DEFAULTS.device, help="Where the encoder runs: auto|cpu|cuda."),
    source: Path | None = typer.Option(None, help="Where a --no-frames cache's videos are now, if moved."),
) -> None:
    """Show the soft maps, the binary masks at beta and the FAME-merged clips of some videos.

    Writes a PNG contact sheet and a GIF or MP4 per video, and index.html showing them all
    with mask statistics; report.json; with ground truth, mask_quality.json.

    Example: fame visualize-masks --cache ucf101.zarr --output masks --sample 16
    """
    from pipelines.data.cache import CacheError
    from pipelines.data.video import VideoError
    from pipelines.fame import parse_beta
    from pipelines.visualize.run import run_visualize

    given = given_options(ctx, VisualizeSettings)
    for name in ("videos", "compare"):  # repeated options, each maybe a comma-separated list
        if name in given:
            given[name] = tuple(part.strip() for value in given[name] for part in value.split(",") if part.strip())
    if ctx.get_parameter_source("output_format").name in GIVEN:
        given["format"] = output_format
    try:
        if "beta" in given:
            given["beta"] = parse_beta(given["beta"])
        settings = VisualizeSettings(**given)
        settings.validate()
    except ValueError as error:  # SettingsError, or parse_beta's ValueError
        fail(str(error))
    console.print("settings: " + json.dumps(asdict(settings)), soft_wrap=True)
    try:
        with progress_bar("visualize", 0) as update:
            report = run_visualize(settings, progress=lambda done, total: update(done, total=total))
    except (CacheError, VideoError, ValueError) as error:  # a checkpoint's errors are ValueErrors
        fail(str(error))
    for skipped in report["skipped"]:
        console.print(f"[red]x[/] {skipped['video_id']}: {skipped['reason']}", soft_wrap=True)
    quality = report["mask_quality"]
    if quality:
        for method, measured in quality["methods"].items():
            mean = measured["mean"]
            console.print(f"mask quality ({method}) over {measured['videos']} video(s): mean ROC-AUC "
                          f"{_number(mean['roc_auc'])}, mean truth kept at beta {_number(mean['foreground_kept'])}, "
                          f"mean IoU {_number(mean['iou'])} (beta {_number(mean['beta'])})", soft_wrap=True)
    console.print(f"{len(report['videos'])} video(s) in {report['seconds']:.1f}s: open {report['index']}",
                  soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("visualize-masks")(visualize_masks)
