"""Shared fixtures: a small synthetic dataset (real video files) made once per session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from pipelines.synth import SynthSettings, write_dataset  # noqa: E402

SMALL_SYNTH = dict(classes=3, videos_per_class=4, frames=40, height=48, width=64, seed=3)


@pytest.fixture(scope="session")
def synth_dataset(tmp_path_factory) -> Path:
    """OUT_DIR of a 12-video `fame synth` dataset (UCF101 layout, ground truth beside)."""
    out = tmp_path_factory.mktemp("synth")
    write_dataset(SynthSettings(out_dir=str(out), **SMALL_SYNTH))
    return out
