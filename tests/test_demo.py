"""The demo's whole pipeline, end to end, on a very small configuration."""

import json
from pathlib import Path

import pytest
from PIL import Image

from pipelines.demo import DemoSettings, run_demo


def test_demo_runs_end_to_end(tmp_path):
    settings = DemoSettings(
        out_dir=str(tmp_path / "demo"), classes=3, videos_per_class=6, frames=40, short_side=64, epochs=1,
        linear_epochs=1, clips_per_video=2, workers=1, loader_workers=0, repeats=2,
        pretrain_overrides={"batch_size": 4, "queue": 16, "max_steps_per_epoch": 2},
    )
    result = run_demo(settings, log=lambda line: None)
    files = {k: Path(v) for k, v in result["files"].items()}
    assert all(path.exists() for path in files.values())
    table = files["table"].read_text()
    assert "moco normal" in table and "fame gap" in table and "linear probe top-1" in table
    data = json.loads(files["json"].read_text())
    for variant in ("moco", "fame"):
        for protocol in ("linear", "retrieval"):
            assert "bg_swap" in data["metrics"][variant][protocol]
        swap = data["metrics"][variant]["swap-retrieval"]
        assert list(swap["metrics"]) == ["same_foreground@1", "same_foreground@5", "same_background@1"]
        assert swap["chance"]["same_background@1"] == pytest.approx(100 / 6, abs=1e-3)  # 6 test videos
        assert set(swap["frozen"]) == {"metrics", "drop"}
        assert sorted(data["seeds"][variant]) == ["0", "1"]  # two pretraining seeds
        assert data["seeds"][variant]["0"]["metrics"] == swap["metrics"]
        summary = data["summary"]["swap-retrieval"]["variants"][variant]["clips"]["same_background@1"]
        values = [data["seeds"][variant][s]["metrics"]["same_background@1"] for s in ("0", "1")]
        assert summary["values"] == values and summary["mean"] == sum(values) / 2
    assert "swap-retrieval" in table and "chance" in table and "+-" in table
    assert Image.open(files["chart"]).size[0] > 200
    assert "<img" in files["gallery"].read_text()
    # a second run reuses every finished stage
    again = run_demo(settings, log=lambda line: None)
    assert again["table"].splitlines()[-1] == result["table"].splitlines()[-1]
