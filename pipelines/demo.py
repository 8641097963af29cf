"""The README's demo: does FAME change what a model learns? Minutes on a laptop CPU.

On data that ``fame synth`` generates (class = motion, every background unique to its
video), run the whole toolkit: preprocess, pretrain the ``small`` backbone with the same
budget and seeds as MoCo + FAME and as plain MoCo (``fame=False``), evaluate both, draw the
masks, and compare. The headline is the instance-level background-bias score
(``swap-retrieval``, ``pipelines.evaluate.swap_retrieval``): does a test clip's nearest neighbour
carry its own foreground, or only its background? It is measured for ``repeats``
pretraining seeds per variant, so the table shows a mean and a spread, beside the chance
levels. The first seed's models also get the class-level protocols (linear probe and
retrieval, each with the background-swap test). Every stage is the library call the
commands make; nothing here is special to the demo but its settings.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable

import numpy as np

from pipelines.atomic_files import atomic_write_json, atomic_write_text
from pipelines.demo_settings import DemoSettings  # noqa: F401  (re-exported)
from pipelines.data.synth import SynthSettings, write_dataset
from pipelines.evaluate.run import EvaluateSettings, run_evaluate
from pipelines.evaluate.swap_retrieval import METRICS as SWAP_METRICS
from pipelines.masks.preprocess import PreprocessSettings, run_preprocess
from pipelines.settings import SettingsError
from pipelines.train.pretrain import run_pretrain
from pipelines.train.recipes import load_recipe, resolve_settings
from pipelines.visualize.run import VisualizeSettings, run_visualize

#: the two pretraining variants the demo compares: name -> fame on/off
VARIANTS = {"moco": False, "fame": True}
#: the class-level metrics of the first seed's models: (protocol, metric key, label)
TABLE_METRICS = (
    ("linear", "top1", "linear probe top-1 (%)"),
    ("retrieval", "recall@1", "retrieval recall@1 (%)"),
    ("retrieval", "recall@5", "retrieval recall@5 (%)"),
)
SWAP = "swap-retrieval"


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


def run_name(name: str, seed: int, settings: DemoSettings) -> str:
    """``moco``/``fame`` for the first seed (the layout of earlier demos), ``moco-seed1``... after."""
    return name if seed == settings.seed else f"{name}-seed{seed}"


def pretrain_seeds(settings: DemoSettings) -> list[int]:
    return [settings.seed + r for r in range(settings.repeats)]


def pretrain_variant(settings: DemoSettings, cache: Path, name: str, fame: bool, log: Log, *,
                     seed: int | None = None) -> Path:
    seed = settings.seed if seed is None else seed
    run_dir = Path(settings.out_dir) / "runs" / run_name(name, seed, settings)
    overrides = {"cache": str(cache), "run_dir": str(run_dir), "fame": fame, "seed": seed,
                 "workers": settings.loader_workers, "device": settings.device}
    if fame:
        overrides["beta"] = settings.beta
    if settings.epochs is not None:
        overrides["epochs"] = settings.epochs
    overrides.update(settings.pretrain_overrides)
    pretrain = resolve_settings(load_recipe(settings.recipe), overrides)
    latest = run_dir / "checkpoints" / "latest.pt"
    result = run_pretrain(pretrain, resume=latest.exists())
    if not result.last_metrics:  # nothing left to train
        log(f"   {run_name(name, seed, settings)}: reusing its {result.epochs} epochs, {result.steps} steps")
    else:
        log(f"   {run_name(name, seed, settings)}: {result.epochs} epochs, {result.steps} steps, last epoch's loss "
            f"{result.last_metrics['loss']:.3f}, contrastive top-1 {result.last_metrics['top1']:.1f}%")
    return latest


def _evaluate(settings: EvaluateSettings) -> dict:
    """``run_evaluate``, or the JSON a finished earlier run left."""
    output = Path(settings.output)
    return json.loads(output.read_text()) if output.exists() else run_evaluate(settings)


def swap_settings(settings: DemoSettings, cache: Path, checkpoint: Path, run: str) -> EvaluateSettings:
    run_dir = Path(settings.out_dir) / "eval" / f"{run}-{SWAP}"
    return EvaluateSettings(cache=str(cache), checkpoint=str(checkpoint), protocol=SWAP, seed=settings.seed,
                            clips_per_video=settings.clips_per_video, workers=settings.loader_workers,
                            device=settings.device, ground_truth=settings.ground_truth, run_dir=str(run_dir),
                            output=str(run_dir / "metrics.json"))


def evaluate_variant(settings: DemoSettings, cache: Path, checkpoint: Path, name: str) -> dict[str, dict]:
    """Linear probe and retrieval, each with the background-swap test, and swap-retrieval."""
    results = {}
    base = EvaluateSettings(cache=str(cache), checkpoint=str(checkpoint), bg_swap=True, seed=settings.seed,
                            clips_per_video=settings.clips_per_video, workers=settings.loader_workers,
                            device=settings.device)
    for protocol, extra in (("linear", {"epochs": settings.linear_epochs}), ("retrieval", {})):
        run_dir = Path(settings.out_dir) / "eval" / f"{name}-{protocol}"
        results[protocol] = _evaluate(replace(base, protocol=protocol, run_dir=str(run_dir),
                                              output=str(run_dir / "metrics.json"), **extra))
    results[SWAP] = _evaluate(swap_settings(settings, cache, checkpoint, name))
    return results


# ---------------------------------------------------------------------------------------------
# Summaries: mean and spread over the pretraining seeds
# ---------------------------------------------------------------------------------------------


def spread(values: list[float]) -> dict:
    """Mean, sample standard deviation (0 for one value) and the values themselves."""
    array = np.asarray(values, dtype=float)
    return {"mean": float(array.mean()), "std": float(array.std(ddof=1)) if len(array) > 1 else 0.0,
            "values": [float(v) for v in array]}


def swap_summary(seeds: dict[str, dict[int, dict]]) -> dict:
    """Per variant, each swap-retrieval score (normal and frozen clips) over the pretraining seeds;
    the chance levels; and FAME - MoCo per seed."""
    summary = {"chance": next(iter(next(iter(seeds.values())).values()))["chance"], "variants": {}}
    for variant, runs in seeds.items():
        ordered = [runs[seed] for seed in sorted(runs)]
        summary["variants"][variant] = {
            "clips": {k: spread([r["metrics"][k] for r in ordered]) for k in SWAP_METRICS},
            "frozen": {k: spread([r["frozen"]["metrics"][k] for r in ordered]) for k in SWAP_METRICS},
        }
    if set(VARIANTS) <= set(seeds):
        common = sorted(set(seeds["moco"]) & set(seeds["fame"]))
        summary["fame_minus_moco"] = {
            k: spread([seeds["fame"][s]["metrics"][k] - seeds["moco"][s]["metrics"][k] for s in common])
            for k in SWAP_METRICS
        }
    return summary


def _pm(entry: dict) -> str:
    return f"{entry['mean']:.1f} +- {entry['std']:.1f}"


def comparison_rows(results: dict[str, dict[str, dict]]) -> list[tuple[str, dict[str, float], dict[str, float]]]:
    """(label, {variant: normal}, {variant: swapped}) for each class-level metric of the first seed."""
    rows = []
    for protocol, key, label in TABLE_METRICS:
        normal = {v: results[v][protocol]["metrics"][key] for v in results}
        swapped = {v: results[v][protocol].get("bg_swap", {}).get("metrics", {}).get(key) for v in results}
        rows.append((label, normal, swapped))
    return rows


def comparison_markdown(results: dict[str, dict[str, dict]], summary: dict, settings: DemoSettings,
                        seconds: float) -> str:
    variants = list(results)
    seeds = pretrain_seeds(settings)
    chance = summary["chance"]
    lines = [
        "# fame demo: MoCo vs MoCo + FAME on synthetic data",
        "",
        f"Settings: {json.dumps(asdict(settings))}",
        f"Total time: {seconds / 60:.1f} min on {os.cpu_count()} CPU core(s).",
        "",
        f"## Background bias, instance by instance (swap-retrieval, {len(seeds)} pretraining seed(s))",
        "",
        "Each test clip queries a gallery of the test videos' foregrounds moved onto other test videos'",
        "clean backgrounds (each without its own subject; " + ("true foreground masks" if settings.ground_truth
                                                               else "the cache's masks") + "). "
        "`same_foreground`: the nearest items carry the query's own",
        "foreground (what moves); `same_background@1`: the nearest carries the query's background (the",
        "shortcut FAME removes). Percent, mean +- sample standard deviation over the pretraining seeds "
        f"{', '.join(map(str, seeds))}.",
        "",
        "| metric | chance | " + " | ".join(variants) + " | fame - moco |",
        "| --- | --- | " + " | ".join("---" for _ in variants) + " | --- |",
    ]
    difference = summary.get("fame_minus_moco", {})
    for key in SWAP_METRICS:
        cells = [_pm(summary["variants"][v]["clips"][key]) for v in variants]
        delta = _pm(difference[key]) if key in difference else "-"
        lines.append(f"| {key} | {chance[key]:.1f} | " + " | ".join(cells) + f" | {delta} |")
    lines += ["", "Per seed:", "", "| seed | " + " | ".join(f"{v} {k}" for v in variants for k in SWAP_METRICS) + " |",
              "| --- | " + " | ".join("---" for _ in variants for _ in SWAP_METRICS) + " |"]
    for i, seed in enumerate(seeds):
        cells = [f"{summary['variants'][v]['clips'][k]['values'][i]:.0f}" for v in variants for k in SWAP_METRICS]
        lines.append(f"| {seed} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "**Frozen clips** (the same queries, one frame repeated: no motion), against the same gallery.",
        "Close to the scores above: the encoder does not use the motion; much lower: it relies on it.",
        "",
        "| metric (frozen queries) | chance | " + " | ".join(variants) + " |",
        "| --- | --- | " + " | ".join("---" for _ in variants) + " |",
    ]
    for key in SWAP_METRICS:
        cells = [_pm(summary["variants"][v]["frozen"][key]) for v in variants]
        lines.append(f"| {key} | {chance[key]:.1f} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"## Class level (the models of seed {seeds[0]} only; chance top-1: {100 / settings.classes:.0f}%)",
        "",
        "Each metric on the normal test set, then on the background-swapped test set (each test",
        "video's foreground on another test video's background); the gap is normal - swapped.",
        "With few classes and test videos these scores cannot resolve the effect (docs/results.md).",
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


COLOURS = {"moco": (120, 120, 120), "fame": (200, 60, 40)}


def comparison_chart(summary: dict, path: Path) -> None:
    """The swap-retrieval scores (PNG, drawn with Pillow): per metric and variant, a bar at the
    mean over the pretraining seeds, a whisker of +- one standard deviation, a dot per seed,
    and the chance level as a dashed line; moving clips, then frozen clips."""
    from PIL import Image, ImageDraw

    variants = list(summary["variants"])
    groups = [(kind, key) for kind in ("clips", "frozen") for key in SWAP_METRICS]
    bar, gap, group_gap, height, top, left = 30, 6, 36, 300, 50, 40
    group_width = len(variants) * (bar + gap)
    width = left + len(groups) * (group_width + group_gap) + 20
    image = Image.new("RGB", (width, top + height + 100), "white")
    draw = ImageDraw.Draw(image)
    seeds = len(next(iter(summary["variants"].values()))["clips"][SWAP_METRICS[0]]["values"])
    draw.text((left, 8), f"swap-retrieval, % (bar: mean of {seeds} pretraining seeds, whisker: +- 1 sd, "
                         "dots: seeds, dashes: chance)", fill="black")
    draw.text((left, 24), "left: the test clips; right: the same clips frozen (no motion)", fill="black")

    def y_of(value: float) -> float:
        return top + height - max(0.0, min(100.0, value)) * height / 100

    for tick in range(0, 101, 20):
        draw.line([(left - 5, y_of(tick)), (width - 10, y_of(tick))], fill=(230, 230, 230))
        draw.text((5, y_of(tick) - 6), str(tick), fill="black")
    for g, (kind, key) in enumerate(groups):
        x0 = left + g * (group_width + group_gap)
        x = x0
        for variant in variants:
            entry = summary["variants"][variant][kind][key]
            colour = COLOURS.get(variant, COLOURS["moco"])
            draw.rectangle([x, y_of(entry["mean"]), x + bar, top + height], fill=colour)
            centre = x + bar / 2
            low, high = y_of(entry["mean"] - entry["std"]), y_of(entry["mean"] + entry["std"])
            draw.line([(centre, low), (centre, high)], fill="black", width=2)
            for value in entry["values"]:
                draw.ellipse([centre - 3, y_of(value) - 3, centre + 3, y_of(value) + 3], outline="black", fill="white")
            draw.text((x + 2, y_of(max(entry["values"])) - 16), f"{entry['mean']:.0f}", fill="black")
            x += bar + gap
        level = y_of(summary["chance"][key])
        for dash in range(int(x0) - 2, int(x0 + group_width), 6):
            draw.line([(dash, level), (dash + 3, level)], fill=(0, 90, 200), width=2)
        label = key.replace("same_", "") + (" frozen" if kind == "frozen" else "")
        draw.text((x0, top + height + 8), label, fill="black")
    for i, variant in enumerate(variants):
        x = left + i * 120
        draw.rectangle([x, top + height + 50, x + 14, top + height + 64], fill=COLOURS.get(variant, COLOURS["moco"]))
        draw.text((x + 20, top + height + 51), variant, fill="black")
    draw.line([(left + 250, top + height + 57), (left + 270, top + height + 57)], fill=(0, 90, 200), width=2)
    draw.text((left + 276, top + height + 51), "chance", fill="black")
    image.save(path)


def results_json(settings: DemoSettings, seconds: float, results: dict, seeds: dict, summary: dict) -> dict:
    """``results.json``: the first seed's metrics per variant and protocol (the layout of earlier
    demos, plus ``swap-retrieval``), every seed's swap-retrieval scores, and their summary."""
    def entry(protocol: str, r: dict) -> dict:
        if protocol == SWAP:
            return {"metrics": r["metrics"], "chance": r["chance"], "frozen": r["frozen"]}
        return {"metrics": r["metrics"], "bg_swap": r.get("bg_swap")}

    return {
        "settings": asdict(settings), "seconds": seconds,
        "metrics": {v: {p: entry(p, r) for p, r in rs.items()} for v, rs in results.items()},
        "seeds": {v: {str(seed): {"metrics": r["metrics"], "frozen": r["frozen"]} for seed, r in runs.items()}
                  for v, runs in seeds.items()},
        "summary": {SWAP: summary},
    }


def run_demo(settings: DemoSettings, log: Log = print) -> dict:
    """Run the whole demo; returns {"results": ..., "summary": ..., "table": markdown, "files": {...}}."""
    settings.validate()
    started = time.perf_counter()
    out = Path(settings.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "demo.json", asdict(settings))

    done = _stage(log, "synth: synthetic videos (class = motion, unique static backgrounds)")
    source = make_data(settings, log)
    done()
    done = _stage(log, "preprocess: decode once, soft masks once, Zarr cache")
    cache = make_cache(settings, source, log)
    done()
    checkpoints: dict[str, dict[int, Path]] = {name: {} for name in VARIANTS}
    for seed in pretrain_seeds(settings):
        for name, fame in VARIANTS.items():
            what = f"MoCo + FAME (beta {settings.beta})" if fame else "plain MoCo"
            done = _stage(log, f"pretrain {run_name(name, seed, settings)}: small backbone, {what}, seed {seed}")
            checkpoints[name][seed] = pretrain_variant(settings, cache, name, fame, log, seed=seed)
            done()
    results, seeds = {}, {name: {} for name in VARIANTS}
    for name in VARIANTS:
        done = _stage(log, f"evaluate {name}: linear probe and retrieval with the background swap; swap-retrieval")
        results[name] = evaluate_variant(settings, cache, checkpoints[name][settings.seed], name)
        seeds[name][settings.seed] = results[name][SWAP]
        done()
    for seed in pretrain_seeds(settings)[1:]:
        done = _stage(log, f"evaluate seed {seed}: swap-retrieval of both variants")
        for name in VARIANTS:
            run = run_name(name, seed, settings)
            seeds[name][seed] = _evaluate(swap_settings(settings, cache, checkpoints[name][seed], run))
        done()
    done = _stage(log, "visualize-masks: contact sheets, animations, index.html")
    gallery = out / "masks"
    run_visualize(VisualizeSettings(cache=str(cache), output=str(gallery), sample=8, seed=settings.seed,
                                    format="gif", checkpoint=str(checkpoints["fame"][settings.seed]),
                                    device=settings.device))
    done()
    seconds = time.perf_counter() - started
    summary = swap_summary(seeds)
    table = comparison_markdown(results, summary, settings, seconds)
    atomic_write_text(out / "results.md", table)
    comparison_chart(summary, out / "results.png")
    atomic_write_json(out / "results.json", results_json(settings, seconds, results, seeds, summary))
    files = {"table": str(out / "results.md"), "chart": str(out / "results.png"),
             "gallery": str(gallery / "index.html"), "json": str(out / "results.json")}
    return {"results": results, "summary": summary, "table": table, "files": files, "seconds": seconds}
