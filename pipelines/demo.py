"""The README's demo: does FAME change what a model learns? Minutes on a laptop CPU.

On data that ``fame synth`` generates (class = motion, every background unique to its
video), run the whole toolkit: preprocess, pretrain the ``small`` backbone twice with the
same budget and seed (MoCo + FAME, and plain MoCo via ``fame=False``), evaluate both
(linear probe and retrieval, each with the background-swap test), draw the masks, and
compare. Every stage is the library call the commands make; nothing here is special to
the demo but its settings.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

from .evaluate import EvaluateSettings, run_evaluate
from .preprocess import PreprocessSettings, run_preprocess
from .recipes import load_recipe, resolve_settings
from .pretrain import run_pretrain
from .synth import SynthSettings, write_dataset
from .visualize import VisualizeSettings, run_visualize

#: the two pretraining variants the demo compares: name -> fame on/off
VARIANTS = {"moco": False, "fame": True}
#: the metrics of the comparison table: (protocol, metric key, label)
TABLE_METRICS = (
    ("linear", "top1", "linear probe top-1 (%)"),
    ("retrieval", "recall@1", "retrieval recall@1 (%)"),
    ("retrieval", "recall@5", "retrieval recall@5 (%)"),
)


@dataclass(frozen=True)
class DemoSettings:
    """What the demo runs; saved in ``OUT/demo.json``."""

    out_dir: str = "demo-output"  # everything goes here: data, cache, runs, masks, results
    seed: int = 0  # seeds the data, both pretraining runs and the evaluations
    classes: int = 5  # motion classes of the synthetic data
    videos_per_class: int = 40  # videos per class (a quarter of them are test videos)
    frames: int = 48  # frames per video
    short_side: int = 64  # cache resolution (the demo's crops are 56 pixels)
    recipe: str = "synth_small"  # the pretraining recipe both variants use
    epochs: int | None = 40  # pretraining epochs (each ~9 steps of 16 videos); None: the recipe's
    linear_epochs: int = 30  # linear probe epochs
    clips_per_video: int = 4  # test clips per video in evaluation
    workers: int = max(1, min(4, os.cpu_count() or 1))  # preprocessing processes
    loader_workers: int = 1  # DataLoader workers in pretraining and evaluation
    device: str = "auto"
    pretrain_overrides: dict = field(default_factory=dict)  # further recipe overrides (tests use tiny runs)


Log = Callable[[str], None]


def _stage(log: Log, name: str):
    started = time.perf_counter()
    log(f"== {name}")
    return lambda: log(f"   {name}: {time.perf_counter() - started:.1f}s")


def make_data(settings: DemoSettings, log: Log) -> Path:
    """The synthetic dataset (kept when it already exists with the same settings)."""
    data = Path(settings.out_dir) / "data"
    synth = SynthSettings(out_dir=str(data), classes=settings.classes, videos_per_class=settings.videos_per_class,
                          frames=settings.frames, seed=settings.seed)
    marker = data / "synth.json"
    if marker.exists() and json.loads(marker.read_text()).get("settings") == asdict(synth):
        log(f"   data: reusing {data}")
    else:
        write_dataset(synth)
    return data / "UCF-101"


def make_cache(settings: DemoSettings, source: Path, log: Log) -> Path:
    cache = Path(settings.out_dir) / "cache.zarr"
    summary = run_preprocess(PreprocessSettings(source=str(source), cache=str(cache), short_side=settings.short_side,
                                                workers=settings.workers))
    if summary.failed:
        raise RuntimeError(f"preprocessing failed: {[(e.path, e.reason) for e in summary.errors]}")
    log(f"   cache: {summary.done} videos done, {summary.skipped} reused, {summary.frames} frames")
    return cache


def pretrain_variant(settings: DemoSettings, cache: Path, name: str, fame: bool, log: Log) -> Path:
    run_dir = Path(settings.out_dir) / "runs" / name
    overrides = {"cache": str(cache), "run_dir": str(run_dir), "fame": fame, "seed": settings.seed,
                 "workers": settings.loader_workers, "device": settings.device}
    if settings.epochs is not None:
        overrides["epochs"] = settings.epochs
    overrides.update(settings.pretrain_overrides)
    pretrain = resolve_settings(load_recipe(settings.recipe), overrides)
    latest = run_dir / "checkpoints" / "latest.pt"
    result = run_pretrain(pretrain, resume=latest.exists())
    log(f"   {name}: {result.epochs} epochs, {result.steps} steps, last loss "
        f"{result.last_metrics.get('loss', float('nan')):.3f}")
    return latest


def evaluate_variant(settings: DemoSettings, cache: Path, checkpoint: Path, name: str) -> dict[str, dict]:
    """Linear probe and retrieval, each with the background-swap test."""
    results = {}
    base = EvaluateSettings(cache=str(cache), checkpoint=str(checkpoint), bg_swap=True, seed=settings.seed,
                            clips_per_video=settings.clips_per_video, workers=settings.loader_workers,
                            device=settings.device)
    for protocol, extra in (("linear", {"epochs": settings.linear_epochs}), ("retrieval", {})):
        run_dir = Path(settings.out_dir) / "eval" / f"{name}-{protocol}"
        output = run_dir / "metrics.json"
        if output.exists():
            results[protocol] = json.loads(output.read_text())
            continue
        evaluation = replace(base, protocol=protocol, run_dir=str(run_dir), output=str(output), **extra)
        results[protocol] = run_evaluate(evaluation)
    return results


def comparison_rows(results: dict[str, dict[str, dict]]) -> list[tuple[str, dict[str, float], dict[str, float]]]:
    """(label, {variant: normal}, {variant: swapped}) for each metric of the table."""
    rows = []
    for protocol, key, label in TABLE_METRICS:
        normal = {v: results[v][protocol]["metrics"][key] for v in results}
        swapped = {v: results[v][protocol].get("bg_swap", {}).get("metrics", {}).get(key) for v in results}
        rows.append((label, normal, swapped))
    return rows


def comparison_markdown(results: dict[str, dict[str, dict]], settings: DemoSettings, seconds: float) -> str:
    variants = list(results)
    lines = [
        "# fame demo: MoCo vs MoCo + FAME on synthetic data",
        "",
        f"Settings: {json.dumps(asdict(settings))}",
        f"Total time: {seconds / 60:.1f} min on {os.cpu_count()} CPU core(s).",
        "",
        "Each metric on the normal test set, then on the background-swapped test set (each test",
        "video's foreground on another test video's background); the gap is normal - swapped,",
        "a direct background-bias score: smaller is less biased.",
        "",
        "| metric | " + " | ".join(f"{v} normal | {v} swapped | {v} gap" for v in variants) + " |",
        "| --- | " + " | ".join("--- | --- | ---" for _ in variants) + " |",
    ]
    for label, normal, swapped in comparison_rows(results):
        cells = []
        for v in variants:
            gap = None if swapped[v] is None else normal[v] - swapped[v]
            cells += [f"{normal[v]:.1f}", "-" if swapped[v] is None else f"{swapped[v]:.1f}",
                      "-" if gap is None else f"{gap:+.1f}"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def comparison_chart(results: dict[str, dict[str, dict]], path: Path) -> None:
    """A grouped bar chart (PNG, drawn with Pillow): each metric, normal and swapped, per variant."""
    from PIL import Image, ImageDraw

    rows = comparison_rows(results)
    variants = list(results)
    colours = {"moco": ((120, 120, 120), (190, 190, 190)), "fame": ((200, 60, 40), (240, 150, 130))}
    bar, gap, group_gap, height, top, left = 26, 4, 40, 300, 40, 40
    group_width = len(variants) * 2 * (bar + gap)
    width = left + len(rows) * (group_width + group_gap) + 20
    image = Image.new("RGB", (width, top + height + 90), "white")
    draw = ImageDraw.Draw(image)
    draw.text((left, 10), "normal (dark) vs background-swapped (light) test set, %", fill="black")
    for tick in range(0, 101, 20):
        y = top + height - tick * height / 100
        draw.line([(left - 5, y), (width - 10, y)], fill=(230, 230, 230))
        draw.text((5, y - 6), str(tick), fill="black")
    for g, (label, normal, swapped) in enumerate(rows):
        x = left + g * (group_width + group_gap)
        for variant in variants:
            for value, colour in ((normal[variant], colours.get(variant, colours["moco"])[0]),
                                  (swapped[variant], colours.get(variant, colours["moco"])[1])):
                if value is not None:
                    y = top + height - max(0.0, min(100.0, value)) * height / 100
                    draw.rectangle([x, y, x + bar, top + height], fill=colour)
                    draw.text((x + 2, y - 12), f"{value:.0f}", fill="black")
                x += bar + gap
        draw.text((left + g * (group_width + group_gap), top + height + 8), label, fill="black")
    for i, variant in enumerate(variants):
        x = left + i * 120
        draw.rectangle([x, top + height + 40, x + 14, top + height + 54], fill=colours.get(variant, colours["moco"])[0])
        draw.text((x + 20, top + height + 41), variant, fill="black")
    image.save(path)


def run_demo(settings: DemoSettings, log: Log = print) -> dict:
    """Run the whole demo; returns {"results": ..., "table": markdown, "files": {...}}."""
    started = time.perf_counter()
    out = Path(settings.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "demo.json").write_text(json.dumps(asdict(settings), indent=2))

    done = _stage(log, "synth: synthetic videos (class = motion, unique static backgrounds)")
    source = make_data(settings, log)
    done()
    done = _stage(log, "preprocess: decode once, soft masks once, Zarr cache")
    cache = make_cache(settings, source, log)
    done()
    checkpoints = {}
    for name, fame in VARIANTS.items():
        done = _stage(log, f"pretrain {name}: small backbone, {'MoCo + FAME' if fame else 'plain MoCo'}")
        checkpoints[name] = pretrain_variant(settings, cache, name, fame, log)
        done()
    results = {}
    for name, checkpoint in checkpoints.items():
        done = _stage(log, f"evaluate {name}: linear probe and retrieval, with the background swap")
        results[name] = evaluate_variant(settings, cache, checkpoint, name)
        done()
    done = _stage(log, "visualize-masks: contact sheets, animations, index.html")
    gallery = out / "masks"
    run_visualize(VisualizeSettings(cache=str(cache), output=str(gallery), sample=8, seed=settings.seed,
                                    format="gif", checkpoint=str(checkpoints["fame"]), device=settings.device))
    done()
    seconds = time.perf_counter() - started
    table = comparison_markdown(results, settings, seconds)
    (out / "results.md").write_text(table)
    comparison_chart(results, out / "results.png")
    (out / "results.json").write_text(json.dumps(
        {"settings": asdict(settings), "seconds": seconds,
         "metrics": {v: {p: {"metrics": r["metrics"], "bg_swap": r.get("bg_swap")} for p, r in rs.items()}
                     for v, rs in results.items()}}, indent=2))
    files = {"table": str(out / "results.md"), "chart": str(out / "results.png"),
             "gallery": str(gallery / "index.html"), "json": str(out / "results.json")}
    return {"results": results, "table": table, "files": files, "seconds": seconds}
