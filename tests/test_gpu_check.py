"""benchmarks/gpu_check.sh runs unchanged without a GPU (its smoke scale) and writes every figure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_smoke_run_writes_every_part(tmp_path):
    output = tmp_path / "gpu_check.json"
    run = subprocess.run([str(ROOT / "benchmarks" / "gpu_check.sh"), str(output), "--device", "cpu",
                          "--work-dir", str(tmp_path / "work")],
                         capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHON": sys.executable})
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(output.read_text())
    assert report["scale"] == "smoke" and report["failed"] == []
    assert report["data"]["videos"] == 8
    pretrain = report["pretrain"]
    assert pretrain["arch"] == "r2plus1d_18" and pretrain["steps_per_s"] > 0 and pretrain["timed_steps"] >= 1
    assert 0 <= pretrain["data_wait_percent"] <= 100
    assert report["masks"]["cpu_1_thread_batched_ms"] > 0 and "gpu_batched_ms" not in report["masks"]
    assert report["jpeg"]["cpu_libjpeg_turbo_frames_per_s"] > 0 and report["jpeg"]["gpu"].startswith("skipped")
    assert report["finetune"]["train_steps"] >= 1
