"""The stage of two checkouts of fame on the same videos, alternated: did a change cost speed?

    python benchmarks/bench_stage_versions.py --source DIR --before /path/to/main --after . \
        [--workers 2 --repeats 3 --short-side 128 --layout auto] [--decode-only]

Each run is a fresh Python process with ``PYTHONPATH`` set to one checkout (the same
interpreter and packages for both), running ``run_preprocess`` with the default settings into
a new cache; the runs of the two sides alternate, and each side keeps its best whole-run
time and its best steady rate (frames per second once every worker is busy, as in
``bench_preprocess.py``). Prints a markdown table and checks both sides cached the same videos.
``--decode-only`` times the two checkouts' ``decode_video`` (the stage's default decoder)
instead, in one process, file by file, interleaved: steadier on a busy machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import importlib, json, sys, time
source, cache, workers, short_side, layout = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
stage = importlib.import_module(sys.argv[6])
PreprocessSettings, run_preprocess = stage.PreprocessSettings, stage.run_preprocess
completions = []
def on_video(result, finished, total):
    if result is not None:
        completions.append((time.perf_counter(), result.frames))
started = time.perf_counter()
summary = run_preprocess(PreprocessSettings(source=source, cache=cache, workers=workers, short_side=short_side,
                                            layout=layout), progress=on_video)
print(json.dumps({"seconds": time.perf_counter() - started, "done": summary.done, "frames": summary.frames,
                  "errors": [[e.path, e.reason] for e in summary.errors], "completions": completions}))
"""

def steady_rate(completions: list, skip: int) -> float:
    """Frames per second after the first ``skip`` videos finished (every worker busy by then)."""
    done = sorted(completions)
    if len(done) <= skip + 1:
        return 0.0
    start = done[skip - 1][0] if skip else done[0][0]
    return sum(frames for _, frames in done[skip:]) / (done[-1][0] - start)


def run_side(checkout: Path, source: Path, cache: Path, workers: int, short_side: int, layout: str) -> dict:
    shutil.rmtree(cache, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(checkout.resolve())}
    command = [sys.executable, "-c", CHILD, str(source), str(cache), str(workers), str(short_side), layout,
               stage_module(checkout)]
    out = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def stage_module(checkout: Path) -> str:
    """Where a checkout keeps ``run_preprocess``: ``pipelines.masks.preprocess``, or
    ``pipelines.preprocess`` in a checkout from before pipelines/ was laid out by stage (issue 21)."""
    staged = (checkout / "pipelines" / "masks" / "preprocess.py").is_file()
    return "pipelines.masks.preprocess" if staged else "pipelines.preprocess"


def load_video_module(checkout: Path, name: str):
    """A checkout's ``pipelines/data/video.py`` (``pipelines/video.py`` before issue 21) as a module
    of its own (it imports nothing of fame)."""
    import importlib.util

    path = checkout / "pipelines" / "data" / "video.py"
    if not path.is_file():
        path = checkout / "pipelines" / "video.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def decode_ab(sides: dict[str, Path], source: Path, layout: str, short_side: int, repeats: int) -> None:
    """Both checkouts' ``decode_video`` in this process, interleaved file by file, alternating which
    goes first; the sums of each file's best and median times. Identical files are timed once."""
    import statistics
    import time

    from pipelines.data.layouts import discover_dataset

    index = discover_dataset(source, layout)
    by_size: dict[int, Path] = {}
    for entry in index.entries:
        path = index.root / entry.path
        by_size.setdefault(path.stat().st_size, path)  # copies of one file: timed once
    paths = sorted(by_size.values())
    modules = {side: load_video_module(checkout.resolve(), f"video_{side}") for side, checkout in sides.items()}
    times = {side: {path: [] for path in paths} for side in sides}
    for module in modules.values():
        module.decode_video(paths[0], short_side=short_side)  # imports paid before the clock starts
    for repeat in range(repeats):
        for path in paths:
            for side in (list(sides) if repeat % 2 == 0 else list(reversed(list(sides)))):
                started = time.perf_counter()
                modules[side].decode_video(path, short_side=short_side)
                times[side][path].append(time.perf_counter() - started)
    best = {side: sum(min(t) for t in times[side].values()) for side in sides}
    median = {side: sum(statistics.median(t) for t in times[side].values()) for side in sides}
    print(f"\nMachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f} at the end; {len(paths)} distinct files of {source}; short side {short_side}; "
          f"decode_video alone, one process, {repeats} interleaved passes\n")
    print("| code | sum of each file's best: ms | vs before | sum of medians: ms | vs before |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for side in sides:
        print(f"| {side} ({sides[side]}) | {best[side] * 1e3:.0f} | {best['before'] / best[side]:.3f}x | "
              f"{median[side] * 1e3:.0f} | {median['before'] / median[side]:.3f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True, help="a dataset root in any layout fame reads")
    parser.add_argument("--before", type=Path, required=True, help="checkout of the code before the change")
    parser.add_argument("--after", type=Path, default=Path("."), help="checkout of the code after it")
    parser.add_argument("--layout", default="auto")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--short-side", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--decode-only", action="store_true",
                        help="time both checkouts' decode_video alone, in this process, file by file")
    args = parser.parse_args()
    if args.decode_only:
        decode_ab({"before": args.before, "after": args.after}, args.source, args.layout, args.short_side,
                  args.repeats)
        return

    work = Path(tempfile.mkdtemp(prefix="fame-versions-"))
    sides = {"before": args.before, "after": args.after}
    best = {side: float("inf") for side in sides}
    steady = {side: 0.0 for side in sides}
    results = {}
    skip = 2 * args.workers
    for path in sorted(p for p in args.source.rglob("*") if p.is_file()):
        path.read_bytes()  # the page cache warm for both sides
    for repeat in range(args.repeats):
        for side in (sides if repeat % 2 == 0 else reversed(list(sides))):
            result = run_side(sides[side], args.source, work / f"{side}.zarr", args.workers, args.short_side,
                              args.layout)
            results[side] = result
            best[side] = min(best[side], result["seconds"])
            steady[side] = max(steady[side], steady_rate(result["completions"], skip))
            print(f"run {repeat + 1} {side}: {result['seconds']:.2f} s, {result['done']} videos, "
                  f"{len(result['errors'])} failed", file=sys.stderr)
    shutil.rmtree(work, ignore_errors=True)

    what = f"the stage, {args.workers} workers"
    print(f"\nMachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f} at the end; {args.source}: {results['after']['done']} videos, "
          f"{results['after']['frames']} frames; short side {args.short_side}; {what}; best of "
          f"{args.repeats} alternated runs\n")
    print("| code | whole run: s | vs before | steady frames/s | vs before | failed |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for side in sides:
        rate = (f"{steady[side]:.0f} | {steady[side] / steady['before']:.3f}x" if steady["before"] else "- | -")
        print(f"| {side} ({sides[side]}) | {best[side]:.2f} | {best['before'] / best[side]:.3f}x | {rate} | "
              f"{len(results[side]['errors'])} |")
    for side in sides:
        for path, reason in results[side]["errors"]:
            print(f"  {side}: x {path}: {reason}")


if __name__ == "__main__":
    main()
