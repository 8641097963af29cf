"""FAME's effect on your own real videos: MoCo vs MoCo + FAME, background bias measured.

For a folder of real videos with per-frame foreground truth (the format of
``pipelines/masks/ground_truth.py``: ``<class>/<name>.npz`` or a PNG folder per video), this

1. caches them with the default ``fame preprocess`` (folder layout: one class a sub-folder;
   several SOURCE folders are joined, each with its own ``--ground-truth-dir``);
2. pretrains plain MoCo (``--no-fame``) and MoCo + FAME with the ``real_small`` recipe on
   all the videos (``--split all``), for each seed;
3. scores each model with ``fame evaluate --protocol swap-retrieval --ground-truth``
   (clean plates: every background without its own subject) on all the videos, moving
   and frozen;
4. prints mean +- sample standard deviation over the seeds beside chance, and writes every
   number to ``WORK/real_bias.json``.

Finished runs are reused (delete ``WORK/runs`` to start over); ``--set NAME=VALUE`` overrides
a recipe setting (how ``real_small`` was chosen: docs/results.md).

Run (the dev sets of this project, 37 videos, 3 seeds; 12.7 minutes on 2 idle cores):

    python benchmarks/real_bias.py ../shared/data/davis-train/videos ../shared/data/fgseg-dev/videos \\
        --ground-truth-dir ../shared/data/davis-train/ground_truth ../shared/data/fgseg-dev/ground_truth \\
        --seeds 0 1 2 --work real-bias
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
import tomllib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.atomic_files import atomic_write_json  # noqa: E402
from pipelines.evaluate.run import EvaluateSettings, run_evaluate  # noqa: E402
from pipelines.evaluate.swap_retrieval import METRICS  # noqa: E402
from pipelines.masks.preprocess import PreprocessSettings, run_preprocess  # noqa: E402
from pipelines.train.pretrain import run_pretrain  # noqa: E402
from pipelines.train.recipes import load_recipe, resolve_settings  # noqa: E402

VARIANTS = {"moco": False, "fame": True}
RECIPE = "real_small"


def join_sources(sources: list[Path], truths: list[Path], work: Path) -> tuple[Path, Path]:
    """One source folder (and one truth folder) from several: their class sub-folders side by
    side under WORK (hard links, copies where links cannot be made). A single pair is used as it is."""
    if len(sources) == 1:
        return sources[0], truths[0]
    joined = work / "source"
    for kind, roots in (("videos", sources), ("ground_truth", truths)):
        for root in roots:
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                target = joined / kind / path.relative_to(root)
                if target.exists():
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                real = path.resolve()  # a link to a link would be refused as leading outside the root
                try:
                    target.hardlink_to(real)
                except OSError:
                    shutil.copy2(real, target)
    return joined / "videos", joined / "ground_truth"


def parse_overrides(pairs: list[str]) -> dict:
    """``NAME=VALUE`` pairs, each VALUE read as TOML (numbers, booleans, "auto")."""
    overrides = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        try:
            overrides[name] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            overrides[name] = value
    return overrides


def run_variant(cache: Path, truth: Path, work: Path, name: str, fame: bool, seed: int, args) -> dict:
    """Pretrain one model (reused when finished) and score it; the evaluate JSON's content."""
    run_dir = work / "runs" / f"{name}-seed{seed}"
    result_path = run_dir / "swap" / "metrics.json"
    if result_path.exists():
        return json.loads(result_path.read_text())
    started = time.perf_counter()
    overrides = {"cache": str(cache), "run_dir": str(run_dir), "fame": fame, "seed": seed, "split": "all",
                 "device": args.device, **parse_overrides(args.set)}
    # resume: a model whose pretraining finished is not trained again
    run_pretrain(resolve_settings(load_recipe(args.recipe), overrides), resume=(run_dir / "checkpoints").is_dir())
    pretrained = time.perf_counter() - started
    result = run_evaluate(EvaluateSettings(
        cache=str(cache), checkpoint=str(run_dir), protocol="swap-retrieval", train_split="all", test_split="all",
        ground_truth=True, ground_truth_dir=str(truth), run_dir=str(run_dir / "swap"),
        clips_per_video=args.clips_per_video, workers=1, device=args.device, seed=seed,
    ))
    result["pretrain_seconds"] = pretrained
    atomic_write_json(result_path, result)
    return result


def pm(values) -> str:
    values = np.asarray(values, dtype=float)
    return f"{values.mean():.1f} +- {values.std(ddof=1) if len(values) > 1 else 0.0:.1f}"


def table(results: dict, chance: dict) -> str:
    """Markdown: mean +- sd per variant and metric, moving and frozen clips, beside chance."""
    names = [f"{m}" for m in METRICS] + [f"frozen {m}" for m in METRICS]
    lines = ["| | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
    for variant, runs in results.items():
        cells = [pm([r["metrics"][m] for r in runs]) for m in METRICS]
        cells += [pm([r["frozen"]["metrics"][m] for r in runs]) for m in METRICS]
        lines.append(f"| {variant} ({len(runs)} seeds) | " + " | ".join(cells) + " |")
    lines.append("| chance | " + " | ".join(f"{chance[m]:.1f}" for m in METRICS) + " |" + " |" * len(METRICS))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", nargs="+", type=Path, help="folder(s) of real videos, one class a sub-folder")
    parser.add_argument("--ground-truth-dir", nargs="+", type=Path, required=True,
                        help="the truth of each SOURCE, in the same order")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--work", type=Path, default=Path("real-bias"), help="cache, runs and results go here")
    parser.add_argument("--recipe", default=RECIPE, help="pretraining recipe (name or .toml)")
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE", help="recipe overrides")
    parser.add_argument("--clips-per-video", type=int, default=10, help="test clips per video (fame evaluate's default)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    if len(args.source) != len(args.ground_truth_dir):
        parser.error(f"{len(args.source)} SOURCE folders but {len(args.ground_truth_dir)} --ground-truth-dir")
    started = time.perf_counter()
    args.work.mkdir(parents=True, exist_ok=True)
    source, truth = join_sources(args.source, args.ground_truth_dir, args.work)
    cache = args.work / "cache.zarr"
    summary = run_preprocess(PreprocessSettings(source=str(source), cache=str(cache), layout="folder"))
    for error in summary.errors:
        print(f"x {error.path}: {error.reason}", file=sys.stderr)
    print(f"cache: {summary.done} videos done, {summary.skipped} reused, {len(summary.errors)} failed", flush=True)
    results: dict[str, list[dict]] = {name: [] for name in VARIANTS}
    for seed in args.seeds:
        for name, fame in VARIANTS.items():
            result = run_variant(cache, truth, args.work, name, fame, seed, args)
            results[name].append(result)
            metrics = ", ".join(f"{m} {result['metrics'][m]:.1f}" for m in METRICS)
            print(f"{name} seed {seed}: {metrics}", flush=True)
    chance = results["moco"][0]["chance"]
    videos = results["moco"][0]["counts"]["videos"]
    seconds = time.perf_counter() - started
    print(f"\nswap-retrieval, clean plates, true masks: {videos} videos, recipe {args.recipe} "
          f"{' '.join(args.set)}, seeds {' '.join(map(str, args.seeds))} ({seconds / 60:.1f} min)\n")
    print(table(results, chance))
    atomic_write_json(args.work / "real_bias.json", {
        "recipe": args.recipe, "overrides": parse_overrides(args.set), "seeds": args.seeds, "videos": videos,
        "chance": chance, "seconds": seconds,
        "runs": {name: [{"metrics": r["metrics"], "frozen": r["frozen"]["metrics"],
                         "pretrain_seconds": r.get("pretrain_seconds")} for r in runs]
                 for name, runs in results.items()},
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
