"""What ``fame visualize-masks`` is asked (``VisualizeSettings``); imports nothing heavy, so that
the command's ``--help`` does not load torch (``pipelines.visualize.run`` re-exports it)."""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.settings import SettingsError

FORMATS = ("png", "gif", "mp4")


@dataclass(frozen=True)
class VisualizeSettings:
    """What ``fame visualize-masks`` was asked; saved in ``report.json``."""

    cache: str  # the cache written by `fame preprocess`
    output: str  # folder for index.html, the pictures and the reports (created)
    videos: tuple[str, ...] = ()  # video ids or paths below the dataset root; empty: sample
    sample: int = 16  # without `videos`: how many to draw, spread over the classes
    split: str | None = "all"  # draw from this split (train/test/...); "all" (or None): every video
    fold: int = 1  # the split's fold on datasets with several (UCF101, HMDB51)
    format: str = "gif"  # png: contact sheets only; gif or mp4: plus an animation per video
    beta: float | str = 0.5  # share of the frame kept as foreground (step 5); "auto": fitted to each map
    compare: tuple[str, ...] = ()  # other mask methods to compute from the cached frames and show beside the cache's
    seed: int = 0  # draws the sample and the derangement of backgrounds
    clip_len: int | None = None  # frames per clip; None: the cache's mask window
    stride: int | None = None  # frames between clip frames; None: the cache's mask stride
    columns: int = 6  # frames per row of a contact sheet
    ground_truth: str | None = None  # ground-truth folder; None: fame synth's, when found
    checkpoint: str | None = None  # pretraining checkpoint: adds the encoder's activation maps
    device: str = "auto"  # where the encoder runs: auto|cpu|cuda
    source: str | None = None  # where a --no-frames cache's videos are now, if moved

    def validate(self) -> None:
        """Raise SettingsError for values no run can use."""
        from pipelines.fame import parse_beta  # torch: here, not at import (`fame --help` stays fast)
        from pipelines.masks.methods import get_method

        if self.format not in FORMATS:
            raise SettingsError(f"unknown format {self.format!r}; choose one of {', '.join(FORMATS)}")
        try:
            parse_beta(self.beta)
            for method in self.compare:
                get_method(method)  # names the choices
        except ValueError as error:
            raise SettingsError(str(error)) from None
