"""What ``fame demo`` runs (``DemoSettings``); imports nothing heavy, so that the command's
``--help`` does not load torch (``pipelines.demo`` re-exports it)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from pipelines.settings import SettingsError


@dataclass(frozen=True)
class DemoSettings:
    """What the demo runs; saved in ``OUT/demo.json``."""

    out_dir: str = "demo-output"  # everything goes here: data, cache, runs, masks, results
    seed: int = 0  # seeds the data and the first pretraining run of each variant and the evaluations
    repeats: int = 2  # pretraining seeds per variant (seed, seed + 1, ...): the spread of the scores
    classes: int = 5  # motion classes of the synthetic data
    videos_per_class: int = 40  # videos per class (a quarter of them are test videos)
    frames: int = 48  # frames per video
    short_side: int = 64  # cache resolution (the demo's crops are 64 pixels)
    recipe: str = "synth_small"  # the pretraining recipe both variants use
    epochs: int | None = 40  # pretraining epochs (each ~9 steps of 16 videos); None: the recipe's
    beta: float = 0.3  # FAME's foreground share of each crop (chosen by measurement, docs/results.md)
    linear_epochs: int = 30  # linear probe epochs
    clips_per_video: int = 4  # test clips per video in evaluation
    ground_truth: bool = True  # swap-retrieval merges with the true foreground (the score then ignores mask quality)
    workers: int = max(1, min(4, os.cpu_count() or 1))  # preprocessing processes
    loader_workers: int = 1  # DataLoader workers in pretraining and evaluation
    device: str = "auto"
    pretrain_overrides: dict = field(default_factory=dict)  # further recipe overrides (tests use tiny runs)

    def validate(self) -> None:
        """Raise SettingsError for values the demo cannot run with."""
        if self.repeats < 1:
            raise SettingsError(f"repeats must be at least 1, got {self.repeats}")
