"""benchmarks/real_bias.py end to end at a tiny scale: two sources joined, both variants
pretrained and scored with clean plates, the table and the JSON written, finished runs reused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def split_in_two(synth_dataset: Path, tmp_path: Path) -> list[tuple[Path, Path]]:
    """Two source folders (with their truth) from the synthetic dataset's classes, as links."""
    pairs = []
    classes = sorted(p.name for p in (synth_dataset / "UCF-101").iterdir() if p.is_dir())
    for part, names in enumerate((classes[:1], classes[1:])):
        videos, truth = tmp_path / f"source{part}" / "videos", tmp_path / f"source{part}" / "truth"
        for name in names:
            (videos / name).mkdir(parents=True)
            (truth / name).mkdir(parents=True)
            for video in (synth_dataset / "UCF-101" / name).iterdir():
                (videos / name / video.name).symlink_to(video)
            for mask in (synth_dataset / "ground_truth" / name).iterdir():
                (truth / name / mask.name).symlink_to(mask)
        pairs.append((videos, truth))
    return pairs


@pytest.mark.slow
def test_real_bias_benchmark_runs_on_two_sources(synth_dataset, tmp_path):
    pairs = split_in_two(synth_dataset, tmp_path)
    work = tmp_path / "work"
    command = [sys.executable, str(ROOT / "benchmarks" / "real_bias.py"), *[str(v) for v, _ in pairs],
               "--ground-truth-dir", *[str(t) for _, t in pairs], "--seeds", "0", "--work", str(work),
               "--clips-per-video", "2", "--device", "cpu",
               "--set", "epochs=2", "batch_size=4", "crop=32", "workers=0", "checkpoint_every=1"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-3000:]
    assert "| moco (1 seeds) |" in run.stdout and "| fame (1 seeds) |" in run.stdout and "| chance |" in run.stdout
    report = json.loads((work / "real_bias.json").read_text())
    assert report["videos"] == 12 and report["overrides"]["epochs"] == 2 and report["recipe"] == "real_small"
    assert set(report["runs"]) == {"moco", "fame"}
    swap = json.loads((work / "runs" / "fame-seed0" / "swap" / "metrics.json").read_text())
    assert swap["swap"]["backgrounds"] == "clean" and swap["swap"]["masks"] == "ground-truth"
    assert swap["settings"]["test_split"] == "all" and swap["counts"]["videos"] == 12
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "cache: 0 videos done, 12 reused" in again.stdout  # nothing trained twice
    assert json.loads((work / "real_bias.json").read_text())["runs"] == report["runs"]
