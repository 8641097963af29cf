"""Two ``fame pretrain`` runs at once on the same cores: what share of a lone run's speed does
each keep? (Issue 20: 0.24-0.30 each on 2 cores, where 0.5 is a fair split.)

Runs the same small pretraining (``python -m fame_cli pretrain``, the ``small`` backbone, one
loader worker) as separate processes:

- ``alone``: one run by itself, default threads; ``alone, 1 thread`` and ``alone, all
  threads``: the same with ``--threads 1`` and with every core (what a run did before);
- ``two, all threads each``: two started together, each with ``--threads`` = every core (what
  every process did before: torch takes one thread per core);
- ``two, default``: two started together, each choosing its own share (``pipelines.threads``).

Each run's speed is its clips/s over the steps after ``--warmup``, from its ``metrics.jsonl``
(two runs started together take about the same time, so they overlap nearly to the end).
The share is that speed over the faster of the two lone runs of the same round; 0.5 means the two runs split the machine without
loss. ``--rounds`` repeats everything, interleaved, and the table shows each round.

    python benchmarks/bench_concurrent_runs.py [--rounds 2 --epochs 6] [--cache CACHE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def pretrain_command(cache: Path, run_dir: Path, args, threads: int | None) -> list[str]:
    command = [sys.executable, "-m", "fame_cli", "pretrain", "--cache", str(cache), "--run-dir", str(run_dir),
               "--arch", "small", "--batch-size", str(args.batch_size), "--clip-len", str(args.clip_len),
               "--stride", "2", "--crop", str(args.crop), "--queue", "256", "--split", "all", "--workers", "1",
               "--device", "cpu", "--epochs", str(args.epochs), "--log-every", "1"]
    return command + (["--threads", str(threads)] if threads else [])


def clips_per_second(run_dir: Path, warmup: int) -> float:
    """Clips over seconds of the steps after ``warmup`` (a metrics line per step)."""
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()][warmup:]
    seconds = sum(r["data_time"] + r["step_time"] for r in lines)
    return sum(r["clips_per_s"] * (r["data_time"] + r["step_time"]) for r in lines) / seconds


def thread_line(stderr: str) -> str:
    return next((line for line in stderr.splitlines() if line.startswith("threads:")), "?")


def run_together(cache: Path, folder: Path, args, threads: list[int | None]) -> list[tuple[float, str]]:
    """Start one run per entry of ``threads`` at once; (clips/s, threads line) of each."""
    env = {**os.environ}
    env.pop("OMP_NUM_THREADS", None)
    runs = []
    for i, count in enumerate(threads):
        run_dir = folder / f"run{i}"
        runs.append((run_dir, subprocess.Popen(pretrain_command(cache, run_dir, args, count), env=env,
                                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)))
    results = []
    for run_dir, process in runs:
        _, stderr = process.communicate()
        if process.returncode:
            raise SystemExit(f"a run failed:\n{stderr}")
        results.append((clips_per_second(run_dir, args.warmup), thread_line(stderr)))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, help="a cache (default: a small synthetic one)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=6, help="epochs per run (40 videos, batch 8: 5 steps each)")
    parser.add_argument("--warmup", type=int, default=5, help="steps left out at the start")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--clip-len", type=int, default=8)
    parser.add_argument("--crop", type=int, default=112)
    parser.add_argument("--videos-per-class", type=int, default=8, help="synthetic dataset: videos per class (of 5)")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))

    with tempfile.TemporaryDirectory() as temporary:
        temporary = Path(temporary)
        if args.cache is None:
            sys.path.insert(0, str(Path(__file__).parent))
            from bench_loader import make_demo_cache

            args.cache = make_demo_cache(temporary, args.videos_per_class, frames=60)
        modes = {"alone": [None], "alone, 1 thread": [1], "alone, all threads": [cores],
                 "two, all threads each": [cores, cores], "two, default": [None, None]}
        lone = ("alone", "alone, 1 thread", "alone, all threads")
        measured: dict[str, list[list[tuple[float, str]]]] = {mode: [] for mode in modes}
        for round_index in range(args.rounds):
            for mode, threads in modes.items():
                folder = temporary / f"r{round_index}-{mode.replace(' ', '_').replace(',', '')}"
                measured[mode].append(run_together(args.cache, folder, args, threads))
                print(f"round {round_index + 1} {mode}: " + ", ".join(f"{speed:.1f} clips/s" for speed, _ in
                                                                    measured[mode][-1]), file=sys.stderr, flush=True)

    print(f"{cores} core(s); `small` backbone, batch {args.batch_size}, clips {args.clip_len}x2 at {args.crop}, "
          f"1 loader worker per run, {args.epochs} epochs; clips/s over the steps after the first {args.warmup} of each run\n")
    print("| round | mode | threads chosen | clips/s of each run | share of the faster lone run's |")
    print("| --- | --- | --- | ---: | ---: |")
    shares: dict[str, list[float]] = {mode: [] for mode in modes if mode not in lone}
    for round_index in range(args.rounds):
        alone = max(measured[mode][round_index][0][0] for mode in lone)
        for mode in modes:
            runs = measured[mode][round_index]
            speeds = ", ".join(f"{speed:.1f}" for speed, _ in runs)
            chosen = "; ".join(sorted({line.split(" (")[0].removeprefix("threads: ") for _, line in runs}))
            share = ", ".join(f"{speed / alone:.2f}" for speed, _ in runs)
            if mode not in lone:
                shares[mode] += [speed / alone for speed, _ in runs]
            print(f"| {round_index + 1} | {mode} | {chosen} | {speeds} | {share} |")
    print()
    for mode, values in shares.items():
        print(f"{mode}: median share {statistics.median(values):.2f}, lowest {min(values):.2f}")
    before = [speed / measured["alone, all threads"][r][0][0] for r in range(args.rounds)
              for speed, _ in measured["two, all threads each"][r]]
    print(f"two, all threads each, over the lone run with all threads (before): median {statistics.median(before):.2f}")
    print("\nthe threads lines the runs printed:")
    for line in sorted({line for runs in measured.values() for results in runs for _, line in results}):
        print(f"  {line}")


if __name__ == "__main__":
    main()
