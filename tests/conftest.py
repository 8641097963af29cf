"""Shared fixtures: a small synthetic dataset (real video files) made once per session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
# Every fame process (and this one) sizes its torch threads by the fame commands running on the
# machine (pipelines.threads); the tests must not depend on what else runs there, so they fix the
# count (inherited by the commands they start) to what torch takes by default, one per core.
os.environ.setdefault("OMP_NUM_THREADS", str(len(os.sched_getaffinity(0))))

from pipelines.data.synth import SynthSettings, write_dataset  # noqa: E402

SMALL_SYNTH = dict(classes=3, videos_per_class=4, frames=40, height=48, width=64, seed=3)


@pytest.fixture(scope="session")
def synth_dataset(tmp_path_factory) -> Path:
    """OUT_DIR of a 12-video `fame synth` dataset (UCF101 layout, ground truth beside)."""
    out = tmp_path_factory.mktemp("synth")
    write_dataset(SynthSettings(out_dir=str(out), **SMALL_SYNTH))
    return out
