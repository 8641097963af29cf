"""The demo over several seeds: mean and spread of every metric, MoCo vs MoCo + FAME.

Runs `fame demo --seed S --out ROOT/seedS` for each seed whose results are not there yet
(a finished seed is reused; extra arguments after `--` go to `fame demo`), then prints
Markdown tables:

1. swap-retrieval (the instance-level background-bias score): per demo seed and
   pretraining seed, MoCo vs FAME, and whether FAME's `same_background@1` is at least
   15 points below MoCo's with `same_foreground@1` not lower; then mean +- sample standard
   deviation over every (data seed, pretraining seed) run, beside the chance levels, for
   moving and for frozen clips;
2. the class-level metrics of each demo's first seed (normal, background-swapped, gap).

Run: python benchmarks/demo_seeds.py --seeds 0 1 2 --root demo-seeds
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

METRICS = (("linear", "top1", "linear probe top-1 (%)"), ("retrieval", "recall@1", "retrieval recall@1 (%)"),
           ("retrieval", "recall@5", "retrieval recall@5 (%)"))
SWAP_METRICS = ("same_foreground@1", "same_foreground@5", "same_background@1")
VARIANTS = ("moco", "fame")
MARGIN = 15.0  # points by which FAME's same_background@1 should sit below MoCo's


def run_seed(root: Path, seed: int, extra: list[str]) -> dict:
    out = root / f"seed{seed}"
    results = out / "results.json"
    if not results.exists():
        subprocess.run([sys.executable, "-m", "fame_cli", "demo", "--seed", str(seed), "--out", str(out), *extra],
                       check=True)
    return json.loads(results.read_text())


def _pm(values) -> str:
    values = np.asarray(values, dtype=float)
    return f"{values.mean():.1f} +- {values.std(ddof=1) if len(values) > 1 else 0:.1f}"


def swap_rows(runs: list[dict]) -> list[tuple[int, int, dict, dict]]:
    """(data seed, pretraining seed, moco swap-retrieval entry, fame entry) for every run."""
    rows = []
    for run in runs:
        seeds = run["seeds"]
        for pretrain_seed in sorted(seeds["moco"], key=int):
            rows.append((run["settings"]["seed"], int(pretrain_seed), seeds["moco"][pretrain_seed],
                         seeds["fame"][pretrain_seed]))
    return rows


def swap_summary(runs: list[dict]) -> str:
    rows = swap_rows(runs)
    chance = runs[0]["metrics"]["moco"]["swap-retrieval"]["chance"]
    lines = ["| data seed | pretraining seed | " + " | ".join(f"{v} {k}" for k in SWAP_METRICS for v in VARIANTS)
             + " | FAME sbg@1 >= 15 below, sfg@1 not lower |",
             "| --- | --- | " + " | ".join("---" for _ in SWAP_METRICS for _ in VARIANTS) + " | --- |"]
    for data_seed, pretrain_seed, moco, fame in rows:
        cells = [f"{entry['metrics'][k]:.0f}" for k in SWAP_METRICS for entry in (moco, fame)]
        holds = (fame["metrics"]["same_background@1"] <= moco["metrics"]["same_background@1"] - MARGIN
                 and fame["metrics"]["same_foreground@1"] >= moco["metrics"]["same_foreground@1"])
        lines.append(f"| {data_seed} | {pretrain_seed} | " + " | ".join(cells) + f" | {'yes' if holds else 'no'} |")
    lines += ["", f"Mean +- sample standard deviation over the {len(rows)} runs above:", "",
              "| metric | chance | moco | fame | fame - moco | moco, frozen clips | fame, frozen clips |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for k in SWAP_METRICS:
        moco = [r[2]["metrics"][k] for r in rows]
        fame = [r[3]["metrics"][k] for r in rows]
        frozen = {v: [r[2 + i]["frozen"]["metrics"][k] for r in rows] for i, v in enumerate(VARIANTS)}
        lines.append(f"| {k} | {chance[k]:.1f} | {_pm(moco)} | {_pm(fame)} | {_pm(np.subtract(fame, moco))} | "
                     f"{_pm(frozen['moco'])} | {_pm(frozen['fame'])} |")
    return "\n".join(lines)


def class_summary(runs: list[dict]) -> str:
    lines = ["| metric | variant | normal | swapped | gap (normal - swapped) |", "| --- | --- | --- | --- | --- |"]
    for protocol, key, label in METRICS:
        for variant in VARIANTS:
            normal = np.array([r["metrics"][variant][protocol]["metrics"][key] for r in runs])
            swapped = np.array([r["metrics"][variant][protocol]["bg_swap"]["metrics"][key] for r in runs])
            lines.append(f"| {label} | {variant} | " + " | ".join(_pm(a) for a in (normal, swapped, normal - swapped)) + " |")
    per_seed = ["", "| seed | " + " | ".join(f"{v} {k}" for _, k, _ in METRICS for v in VARIANTS) + " |",
                "| --- | " + " | ".join("---" for _ in METRICS for _ in VARIANTS) + " |"]
    for run in runs:
        cells = [f"{run['metrics'][v][p]['metrics'][k]:.1f}" for p, k, _ in METRICS for v in VARIANTS]
        per_seed.append(f"| {run['settings']['seed']} | " + " | ".join(cells) + " |")
    return "\n".join(lines + per_seed)


def summary(runs: list[dict]) -> str:
    seconds = [r["seconds"] for r in runs]
    return "\n".join([
        "## swap-retrieval", "", swap_summary(runs), "",
        "## class level (each demo's first pretraining seed)", "", class_summary(runs), "",
        f"{len(runs)} demo seeds; the last `fame demo` call of each took {min(seconds) / 60:.1f}-"
        f"{max(seconds) / 60:.1f} min (a call that reused finished stages counts only the rest).",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--root", type=Path, default=Path("demo-seeds"))
    parser.add_argument("extra", nargs="*", help="after --: arguments for fame demo")
    args = parser.parse_args()
    print(summary([run_seed(args.root, seed, args.extra) for seed in args.seeds]))


if __name__ == "__main__":
    main()
