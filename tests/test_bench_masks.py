"""benchmarks/bench_masks.py scores as issue 19 does: baselines on each clip's own frames, and
each score as the mean over videos and over all clips pooled."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.masks.methods import METHODS, compute_video_masks
from pipelines.masks.window_maps import window_starts

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_masks", ROOT / "benchmarks" / "bench_masks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_baselines_are_marked():
    assert {name for name, method in METHODS.items() if method.baseline} == {
        "frame-difference", "translation-difference", "centre"}


def test_a_baseline_scored_by_clips_gets_a_window_on_each_clip(bench):
    frames = 100
    parameters = bench.method_parameters("frame-difference", 8)
    assert parameters.hop == 8 and bench.method_parameters("frame-difference", None).hop == 16
    assert bench.method_parameters("motion", 8).hop == 16  # read from the cache's windows, as preprocess makes them
    assert bench.method_parameters("adaptive", 4).hop == 8
    starts = window_starts(frames, window=parameters.window, stride=parameters.stride, hop=parameters.hop)
    clips = bench.scored_clips(starts, frames, 8)
    assert clips and all(starts[g] == first for first, g in clips)
    cached = window_starts(frames, window=16, stride=2, hop=16)
    assert any(cached[g] != first for first, g in bench.scored_clips(cached, frames, 8))


def test_frame_difference_on_a_clip_is_the_clips_own(bench, synth_dataset):
    """The window a clip is scored with covers exactly the clip's frames: its map is the map of
    those frames alone."""
    from pipelines.data.video import read_video

    video, _ = read_video(next((synth_dataset / "UCF-101").rglob("*.avi")), short_side=64)
    parameters = bench.method_parameters("frame-difference", 8)
    maps, starts = compute_video_masks(video, "frame-difference", parameters)
    first, g = bench.scored_clips(starts, len(video), 8)[1]
    alone, _ = compute_video_masks(video[first : first + 31], "frame-difference", parameters)
    assert (maps[g] == alone[0]).all()


def test_pooled_and_per_video_means(bench):
    rows = {"long": [{"auc": 1.0}] * 3, "short": [{"auc": 0.5}]}
    assert bench.mean_over_videos(rows, "auc") == pytest.approx(0.75)
    assert bench.mean_over_clips(rows, "auc") == pytest.approx(3.5 / 4)


def test_the_benchmark_prints_both_means(tmp_path):
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_masks.py"), "--synthetic", "5",
                          "--frames", "48", "--clip-every", "8", "--masks", "motion,frame-difference,centre"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "ROC-AUC: videos / clips" in run.stdout
    assert "| frame-difference | each clip's frames |" in run.stdout
    assert "| motion | windows every 16 |" in run.stdout
