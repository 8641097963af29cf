"""``fame info``: what a cache holds (videos, frames, classes, splits, errors)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from pipelines.data.cache import CacheError, open_cache

from .console import fail, out


def info(
    cache: Path = typer.Option(..., "--cache", help="The cache written by `fame preprocess`."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Describe a cache.

    Example: fame info --cache ucf101.zarr --json
    """
    try:
        summary = open_cache(cache).summary()
    except CacheError as error:
        fail(str(error))
    if as_json:
        print(json.dumps(summary, indent=2, ensure_ascii=False))
        return
    from rich.table import Table

    table = Table(title=f"fame cache {cache}", show_header=False)
    for key in ("layout", "source", "videos", "frames", "frames_stored", "frame_codec", "pending"):
        table.add_row(key, str(summary[key]))
    chosen = summary["decoder"]  # videos per decoder, --decoder first; a "fallback" one read what it could not
    counts = sorted(summary["decoders"].items(), key=lambda item: item[0] != chosen)
    table.add_row("decoders", ", ".join(f"{name} {count}" + ("" if name == chosen else " (fallback)")
                                        for name, count in counts) or "none yet")
    settings = summary["settings"]
    if "window" in settings:
        method, version = summary["masks"]["method"], summary["masks"]["version"]
        windows = (f"windows of {settings['window']} frames at stride {settings['stride']}, every "
                   f"{settings['hop']} frames")
        if method == "paper":
            context = settings.get("colour_context", 0)
            windows += "; colour context " + (f"{context} windows each side" if context else "0 (the paper's step 4)")
        table.add_row("masks", f"{method} (version {version}): {windows}")
    table.add_row("classes", f"{len(summary['classes'])}: " + ", ".join(summary["classes"][:10])
                  + (" ..." if len(summary["classes"]) > 10 else ""))
    table.add_row("splits", ", ".join(f"{k} ({v})" for k, v in summary["splits"].items()) or "none")
    table.add_row("errors", str(len(summary["errors"])))
    out.print(table)
    for error in summary["errors"]:
        out.print(f"  [red]x[/] {error['path']}: {error['reason']}", soft_wrap=True)
    if summary["pending"]:
        half = f", {summary['unfinished']} of them half-written" if summary["unfinished"] else ""
        out.print(f"{summary['pending']} listed videos are not in the cache yet{half}: a run (or a --shard) is still "
                  "going, was stopped, or never ran; rerun `fame preprocess` with the same options (and each "
                  "missing --shard) to finish. Readers see only the finished videos.", soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("info")(info)
