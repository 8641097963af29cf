"""TensorBoard event files beside metrics.jsonl (when ``tensorboard`` is installed) and the
loss/accuracy curves PNG every pretraining run leaves (issue 20)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import tiny_cache
from pipelines.evaluate.run import EvaluateSettings, run_evaluate
from pipelines.train import run_logs
from pipelines.train.pretrain import run_pretrain
from pipelines.train.run_logs import CURVES, TENSORBOARD_DIR, ScalarLog, read_metrics, write_curves
from pipelines.train.settings import PretrainSettings

TINY = dict(arch="small", epochs=2, batch_size=4, clip_len=4, stride=2, crop=24, queue=64, split="all",
            workers=0, device="cpu", log_every=1, lr=0.05)


@pytest.fixture(scope="module")
def cache(synth_dataset, tmp_path_factory) -> Path:
    return tiny_cache(synth_dataset, tmp_path_factory.mktemp("logs"), "c.zarr")


@pytest.fixture(scope="module")
def run(cache, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("logs") / "run"
    run_pretrain(PretrainSettings(cache=str(cache), run_dir=str(run_dir), **TINY))
    return run_dir


def test_read_metrics_skips_a_torn_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.5}\n{"step": 3, "lo')
    assert [r["step"] for r in read_metrics(path)] == [1, 2]
    assert read_metrics(tmp_path / "absent.jsonl") == []


def test_curves_png_draws_the_series(tmp_path):
    records = [{"step": s, "epoch": 1, "loss": 5 - s / 10, "top1": 2 * s, "top5": 4 * s} for s in range(1, 21)]
    path = write_curves(records, tmp_path / "curves.png", title="a run")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 2 * run_logs.PANEL[0]
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
    colours = {tuple(c) for c in np.unique(pixels, axis=0)}
    assert {run_logs.SERIES_COLOURS["loss"], run_logs.SERIES_COLOURS["top1"], run_logs.SERIES_COLOURS["top5"]} <= colours
    assert write_curves([], tmp_path / "none.png") is None and not (tmp_path / "none.png").exists()
    write_curves(records[:1], tmp_path / "one.png")  # one point: still a picture
    assert (tmp_path / "one.png").is_file()


def test_pretraining_leaves_a_curves_png(run):
    with Image.open(run / CURVES) as image:
        assert image.format == "PNG"
    assert len(read_metrics(run / "metrics.jsonl")) == 6  # 2 epochs x 3 steps, a line each


def test_without_tensorboard_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr(run_logs, "tensorboard_available", lambda: False)
    with ScalarLog(tmp_path) as events:
        events.scalars("train", {"loss": 1.0}, step=1)
        assert not events.active
    assert not (tmp_path / TENSORBOARD_DIR).exists()


def _scalars(directory: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of the event files in ``directory``: tag -> [(step, value)]."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    found: dict[str, list[tuple[int, float]]] = {}
    for events_file in sorted(directory.glob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events_file))
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            found.setdefault(tag, []).extend((e.step, e.value) for e in accumulator.Scalars(tag))
    return found


def test_pretraining_and_evaluation_write_tensorboard_events(run, cache, tmp_path):
    pytest.importorskip("tensorboard")
    scalars = _scalars(run / TENSORBOARD_DIR)
    lines = read_metrics(run / "metrics.jsonl")
    assert [step for step, _ in scalars["train/loss"]] == [r["step"] for r in lines]
    assert [value for _, value in scalars["train/loss"]] == pytest.approx([r["loss"] for r in lines], rel=1e-5)
    assert {"train/top1", "train/lr", "train/clips_per_s", "epoch/loss"} <= set(scalars)
    assert [step for step, _ in scalars["epoch/loss"]] == [3, 6]

    run_dir = tmp_path / "linear"
    result = run_evaluate(EvaluateSettings(cache=str(cache), checkpoint=str(run), protocol="linear", epochs=2,
                                           batch_size=4, clips_per_video=2, test_batch_size=2, workers=0,
                                           device="cpu", run_dir=str(run_dir)))
    scalars = _scalars(run_dir / TENSORBOARD_DIR)
    assert [step for step, _ in scalars["train/loss"]] == [1, 2]
    assert scalars["test/top1"] == [(2, pytest.approx(result["metrics"]["top1"], abs=1e-4))]
    assert json.loads((run_dir / "metrics.json").read_text())["metrics"] == result["metrics"]
