"""The demo over several seeds: mean and spread of every metric, MoCo vs MoCo + FAME.

Runs `fame demo --seed S --out ROOT/seedS` for each seed whose results are not there yet
(a finished seed is reused), then prints one Markdown table: for each metric, the mean
and standard deviation over seeds on the normal and on the background-swapped test set,
and of the gap (normal - swapped, the background-bias score).

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


def run_seed(root: Path, seed: int) -> dict:
    out = root / f"seed{seed}"
    results = out / "results.json"
    if not results.exists():
        subprocess.run([sys.executable, "-m", "fame_cli", "demo", "--seed", str(seed), "--out", str(out)], check=True)
    return json.loads(results.read_text())


def summary(runs: list[dict]) -> str:
    lines = ["| metric | variant | normal | swapped | gap (normal - swapped) |", "| --- | --- | --- | --- | --- |"]
    for protocol, key, label in METRICS:
        for variant in ("moco", "fame"):
            normal = np.array([r["metrics"][variant][protocol]["metrics"][key] for r in runs])
            swapped = np.array([r["metrics"][variant][protocol]["bg_swap"]["metrics"][key] for r in runs])
            gap = normal - swapped
            cells = [f"{a.mean():.1f} +- {a.std(ddof=1) if len(a) > 1 else 0:.1f}" for a in (normal, swapped, gap)]
            lines.append(f"| {label} | {variant} | " + " | ".join(cells) + " |")
    seconds = [r["seconds"] for r in runs]
    lines.append("")
    lines.append(f"{len(runs)} seeds; mean +- sample standard deviation; one demo run took "
                 f"{min(seconds) / 60:.1f}-{max(seconds) / 60:.1f} min.")
    per_seed = ["", "| seed | " + " | ".join(f"{v} {k}" for _, k, _ in METRICS for v in ("moco", "fame")) + " |",
                "| --- | " + " | ".join("---" for _ in METRICS for _ in (0, 1)) + " |"]
    for run in runs:
        cells = [f"{run['metrics'][v][p]['metrics'][k]:.1f}" for p, k, _ in METRICS for v in ("moco", "fame")]
        per_seed.append(f"| {run['settings']['seed']} | " + " | ".join(cells) + " |")
    return "\n".join(lines + per_seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--root", type=Path, default=Path("demo-seeds"))
    args = parser.parse_args()
    print(summary([run_seed(args.root, seed) for seed in args.seeds]))


if __name__ == "__main__":
    main()
