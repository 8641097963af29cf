"""What a training run leaves for people to look at beside its JSON: TensorBoard event files
(``RUN/tensorboard/``, when the optional ``tensorboard`` package is installed: ``pip install
fame[tensorboard]``) and a PNG of the loss and accuracy curves (``RUN/curves.png``, drawn with
Pillow, which fame already uses for its pictures; nothing extra to install).

Both are for looking at; ``metrics.jsonl`` and the metrics JSON stay the record.

>>> with ScalarLog("runs/fame") as events:            # a no-op without tensorboard
...     events.scalars("train", {"loss": 3.1, "top1": 12.0}, step=10)
>>> write_curves(read_metrics("runs/fame/metrics.jsonl"), "runs/fame/curves.png")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
from pathlib import Path

from pipelines.atomic_files import atomic_path

TENSORBOARD_DIR = "tensorboard"  # RUN/tensorboard: `tensorboard --logdir RUN/tensorboard`
CURVES = "curves.png"
#: record keys that are positions, not values to plot
POSITIONS = ("step", "epoch")


def tensorboard_available() -> bool:
    """Whether the ``tensorboard`` package (which torch's SummaryWriter needs) is installed."""
    return importlib.util.find_spec("tensorboard") is not None


class ScalarLog:
    """Scalars into TensorBoard event files in ``RUN/tensorboard``; does nothing (and creates
    nothing) when ``tensorboard`` is not installed or ``enabled`` is False (other ranks).

    ``purge_step``: a resumed run passes the first step it redoes, so TensorBoard drops the
    events the interrupted run wrote from there on (as ``metrics.jsonl`` drops its lines)."""

    def __init__(self, run_dir: str | os.PathLike, *, purge_step: int | None = None, enabled: bool = True):
        self.directory = Path(run_dir) / TENSORBOARD_DIR
        self.writer = None
        if enabled and tensorboard_available():
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(self.directory), purge_step=purge_step)

    @property
    def active(self) -> bool:
        return self.writer is not None

    def scalars(self, prefix: str, values: dict, *, step: int) -> None:
        """Every finite number of ``values`` (but step and epoch) as ``prefix/name`` at ``step``."""
        if self.writer is None:
            return
        for name, value in values.items():
            if name not in POSITIONS and isinstance(value, (int, float)) and math.isfinite(value):
                self.writer.add_scalar(f"{prefix}/{name}", value, step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def __enter__(self) -> "ScalarLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """The records of a ``metrics.jsonl`` (a torn last line is skipped); [] when there is none."""
    records = []
    try:
        lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "step" in record:
            records.append(record)
    return records


# --------------------------------------------------------------------------- the PNG

PANEL = (420, 260)  # width, height of a plot's area in pixels
MARGIN = (56, 34, 16, 40)  # left, top, right, bottom around a plot's area
SERIES_COLOURS = {"loss": (200, 60, 40), "top1": (30, 110, 200), "top5": (120, 170, 230)}
GRID = (228, 228, 228)
TICKS = 5


def _ticks(low: float, high: float) -> list[float]:
    if high <= low:
        return [low]
    return [low + (high - low) * i / (TICKS - 1) for i in range(TICKS)]


def _label(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _panel(draw, origin: tuple[int, int], title: str, steps: list[int], series: dict[str, list[float]],
           fixed: tuple[float, float] | None) -> None:
    """One plot: ``series`` (name -> values at ``steps``) as lines, with axes, ticks and a legend."""
    x0, y0 = origin[0] + MARGIN[0], origin[1] + MARGIN[1]
    width, height = PANEL
    values = [v for vs in series.values() for v in vs if math.isfinite(v)]
    low, high = fixed if fixed is not None else (min(values, default=0.0), max(values, default=1.0))
    if high <= low:
        low, high = low - 0.5, high + 0.5
    first, last = (steps[0], steps[-1]) if steps else (0, 1)
    span = max(last - first, 1)

    def xy(step: float, value: float) -> tuple[float, float]:
        return (x0 + (step - first) * width / span, y0 + height - (value - low) * height / (high - low))

    draw.text((x0, origin[1] + 10), title, fill="black")
    for tick in _ticks(low, high):
        y = xy(first, tick)[1]
        draw.line([(x0, y), (x0 + width, y)], fill=GRID)
        draw.text((origin[0] + 4, y - 6), _label(tick), fill="black")
    for tick in _ticks(first, last):
        x = xy(tick, low)[0]
        draw.line([(x, y0 + height), (x, y0 + height + 4)], fill="black")
        draw.text((x - 10, y0 + height + 8), f"{tick:.0f}", fill="black")
    draw.text((x0 + width - 30, y0 + height + 22), "step", fill="black")
    draw.rectangle([x0, y0, x0 + width, y0 + height], outline="black")
    for i, (name, vs) in enumerate(series.items()):
        colour = SERIES_COLOURS.get(name, (90, 90, 90))
        points = [xy(s, v) for s, v in zip(steps, vs) if math.isfinite(v)]
        if len(points) == 1:
            x, y = points[0]
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
        elif points:
            draw.line(points, fill=colour, width=2)
        draw.text((x0 + width - 60 * (len(series) - i), origin[1] + 10), name, fill=colour)


def write_curves(records: list[dict], path: str | os.PathLike, *, title: str = "") -> Path | None:
    """A PNG of ``loss`` (left) and ``top1``/``top5`` in percent (right) against ``step``, from
    ``metrics.jsonl`` records; replaced atomically. None (nothing written) without records."""
    from PIL import Image, ImageDraw

    records = sorted((r for r in records if "step" in r), key=lambda r: r["step"])
    if not records:
        return None
    steps = [int(r["step"]) for r in records]

    def column(name: str) -> list[float]:
        return [float(r.get(name, math.nan)) for r in records]

    panel_w, panel_h = PANEL[0] + MARGIN[0] + MARGIN[2], PANEL[1] + MARGIN[1] + MARGIN[3]
    top = 22 if title else 0
    image = Image.new("RGB", (2 * panel_w, panel_h + top), "white")
    draw = ImageDraw.Draw(image)
    if title:
        draw.text((MARGIN[0], 6), title, fill="black")
    _panel(draw, (0, top), "loss", steps, {"loss": column("loss")}, None)
    accuracy = {name: column(name) for name in ("top1", "top5") if any(name in r for r in records)}
    _panel(draw, (panel_w, top), "contrastive accuracy (%)", steps, accuracy, (0.0, 100.0))
    path = Path(path)
    with atomic_path(path, durable=False) as temporary:
        image.save(temporary, format="PNG")
    return path
