"""``fame preprocess``: decode once, masks once, into a Zarr cache (resumable, parallel)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import typer

from pipelines.data.cache import CacheError
from pipelines.data.layouts import LayoutError
from pipelines.masks.preprocess import PreprocessSettings, run_preprocess  # light: torch loads in process_video
from pipelines.settings import SettingsError

from .console import console, fail, progress_bar
from .options import defaults, given_options

DEFAULTS = defaults(PreprocessSettings)
# The command's own default, unlike the library's single process: the machine's cores, up to 8.
WORKERS = min(8, os.cpu_count() or 1)


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"I/N"`` -> (I, N)."""
    if not text:
        return None
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise typer.BadParameter(f"{text!r}: write the shard as I/N, e.g. 0/4") from None
    if not 0 <= index < count:
        raise typer.BadParameter(f"{text!r}: I must lie in [0, N)")
    return index, count


def preprocess(
    ctx: typer.Context,
    source: Path = typer.Argument(..., help="Dataset root (or a `path label` list file)."),
    cache: Path = typer.Option(..., "--cache", help="Zarr store to write (created, or resumed)."),
    layout: str = typer.Option(DEFAULTS.layout, help="auto|ucf101|hmdb51|diving48|kinetics|folder|list"),
    split_dir: Path | None = typer.Option(None, help="Folder with the split files, if not beside the videos."),
    short_side: int = typer.Option(DEFAULTS.short_side, help="Resize at decode time so the shorter side is this (0: native)."),
    workers: int = typer.Option(WORKERS, help="Worker processes (1: this process)."),
    frames: bool = typer.Option(DEFAULTS.frames, "--frames/--no-frames", help="Store frames, or only masks and metadata."),
    window: int = typer.Option(DEFAULTS.window, help="Frames per mask window."),
    stride: int = typer.Option(DEFAULTS.stride, help="Temporal stride inside a mask window."),
    hop: int = typer.Option(DEFAULTS.hop, help="Frames between consecutive mask windows (0: the mask method's own: 8 for adaptive, 16 for the others)."),
    masks: str = typer.Option(
        DEFAULTS.masks, help="Mask method: adaptive (camera-compensated motion adapted to the camera and the spread of the "
        "evidence, the default: best on real footage), motion (camera-compensated motion, the default before "
        "adaptive), paper (the paper's map, bit for bit), frame-difference, translation-difference or centre "
        "(baselines). docs/method.md."),
    colour_context: int = typer.Option(
        DEFAULTS.colour_context, help="With --masks paper: mask windows on each side whose seed colours join each window's colour "
        "histograms (0: the paper's step 4, one window; 4 scored better on synthetic ground truth: docs/method.md)."),
    frame_codec: str = typer.Option(DEFAULTS.frame_codec, help="Frame codec: jpeg (small, lossy), zstd (lossless) or raw (uncompressed, fastest reads)."),
    frame_quality: int = typer.Option(DEFAULTS.frame_quality, help="JPEG quality of the frames (1-100)."),
    frame_chunk: int = typer.Option(DEFAULTS.frame_chunk, help="Frames per compressed chunk (0: the codec's own, jpeg/raw 1, zstd 8)."),
    zstd_level: int = typer.Option(DEFAULTS.zstd_level, help="zstd level of the masks (and of zstd frames): 1 writes faster, 3+ is smaller."),
    decoder: str = typer.Option(DEFAULTS.decoder, help="pyav (frames in order, scaled before the RGB conversion: faster) or "
                                "decord (the reference; what caches made before this option used). A file it cannot "
                                "read is given to the other; `fame info` counts the videos of each."),
    shard: str | None = typer.Option(None, help="Do only part I of N (I/N), e.g. one per machine."),
    limit: int | None = typer.Option(None, help="Only the first N videos (a quick trial)."),
    threads: int | None = typer.Option(
        None, help="Torch threads with --workers 1 (each worker process runs one). \\[default: OMP_NUM_THREADS, "
        "else the cores divided among the fame commands running]"),
) -> None:
    """Decode every video once, compute its soft foreground masks once, and cache both.

    Run it again with the same command to resume after an interruption: finished videos
    are skipped, half-written ones redone. Exit status 1 if any video could not be used.

    Example: fame preprocess data/UCF-101 --cache ucf101.zarr --workers 8
    """
    from pipelines.train.distributed import torchrun_shard

    given = given_options(ctx, PreprocessSettings)
    given.update(workers=max(1, workers), shard=parse_shard(shard) or torchrun_shard() or DEFAULTS.shard)
    try:
        settings = PreprocessSettings(**given)  # checked at once (PreprocessSettings.__post_init__)
    except SettingsError as error:
        fail(str(error))
    console.print("settings: " + json.dumps(asdict(settings)), soft_wrap=True)
    frame_count = 0
    try:
        with progress_bar("preprocess", 0, "speed") as update:
            def on_video(result, finished, total):
                nonlocal frame_count
                if result is None:
                    update(finished, total=total, speed="")
                    return
                frame_count += result.frames
                if result.status == "error":
                    console.print(f"[red]x[/] {result.path}: {result.reason}", soft_wrap=True)
                update(finished, total=total, speed=f"{frame_count / max(elapsed(), 1e-9):.0f} frames/s")

            import time

            started = time.perf_counter()

            def elapsed() -> float:
                return time.perf_counter() - started

            summary = run_preprocess(settings, progress=on_video, log=lambda line: console.print(line, soft_wrap=True))
    except (LayoutError, CacheError, ValueError) as error:
        fail(str(error))
    except OSError as error:  # a write outside a video's own files (the store's root) failed, e.g. a full disk
        fail(f"{error.filename or cache}: {error.strerror or error}; fix that, then rerun the same command to resume")
    console.print(
        f"layout {summary.layout}: {summary.done} videos done, {summary.skipped} already cached, "
        f"{len(summary.errors)} failed, {summary.frames} frames in {summary.seconds:.1f}s "
        f"({summary.frames / max(summary.seconds, 1e-9):.0f} frames/s)"
        + (f"; {summary.fallbacks} read by the other decoder, --decoder {settings.decoder} could not read them "
           "(`fame info` counts them)" if summary.fallbacks else "")
    )
    if summary.failed:
        console.print(f"[bold red]{len(summary.errors) + len(summary.problems)} problem(s):[/]")
        for path, reason in summary.problems:
            console.print(f"  x {path}: {reason}", soft_wrap=True)
        for result in summary.errors:
            console.print(f"  x {result.path}: {result.reason}", soft_wrap=True)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("preprocess")(preprocess)
