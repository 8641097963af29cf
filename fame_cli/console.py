"""Terminal output shared by the commands: a rich progress bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager

from rich.console import Console

console = Console(stderr=True, highlight=False)
out = Console(highlight=False)


def interactive() -> bool:
    return console.is_terminal


def fail(message: str, code: int = 2):
    """One clear line and an exit status; no traceback."""
    import typer

    from rich.markup import escape

    from .errors import one_line

    console.print(f"[bold red]error:[/] {escape(one_line(message))}", soft_wrap=True)
    raise typer.Exit(code)


#: characters of the plain progress bar
BAR_WIDTH = 20


def duration(seconds: float) -> str:
    """``75`` -> ``1m15s``, ``4000`` -> ``1h06m``; ``?`` when unknown."""
    if not seconds >= 0 or seconds == float("inf"):
        return "?"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def plain_line(description: str, completed: int, total: int, fields: dict, elapsed: float, eta: float,
               unit: str = "") -> str:
    """One progress line: ``pretrain [#####...............] 120/480 steps epoch 2/8 loss 3.090 ...
    elapsed 1m02s ETA 3m06s``. ``fields`` are shown as given, so each carries its own label
    or unit (``"loss 3.090"``, ``"12 clips/s"``)."""
    share = completed / total if total else 0.0
    filled = min(BAR_WIDTH, int(share * BAR_WIDTH))
    bar = "[" + "#" * filled + "." * (BAR_WIDTH - filled) + "]"
    values = " ".join(str(value) for value in fields.values() if str(value))
    return " ".join(part for part in (description, bar, f"{completed}/{total}" + (f" {unit}" if unit else ""), values,
                                      f"elapsed {duration(elapsed)}", f"ETA {duration(eta)}") if part)


class PlainProgress:
    """Progress as plain lines (logs, CI): at most one line every ``every`` seconds, and the last.

    The ETA comes from the rate since the first update, so a resumed run (which starts at
    its checkpoint's step) is not credited with the steps done before it."""

    def __init__(self, description: str, total: int, every: float = 5.0, unit: str = ""):
        self.description, self.total, self.every, self.unit = description, total, every, unit
        self.started = self.last = time.perf_counter()
        self.first: int | None = None  # completed at the first update

    def update(self, completed: int, total: int | None = None, **fields) -> None:
        if total is not None:
            self.total = total
        now = time.perf_counter()
        if self.first is None:  # the rate is measured from here
            self.first, self.started = completed, now
        elif now - self.last < self.every and completed < self.total:
            return
        if completed < self.total and completed == self.first:
            return  # nothing done yet: no line
        self.last = now
        elapsed = now - self.started
        rate = (completed - self.first) / elapsed if elapsed > 0 else 0.0
        eta = 0.0 if completed >= self.total else (self.total - completed) / rate if rate > 0 else float("nan")
        print(plain_line(self.description, completed, self.total, fields, elapsed, eta, self.unit), file=sys.stderr,
              flush=True)


@contextmanager
def progress_bar(description: str, total: int, *fields: str, unit: str = ""):
    """Yields ``update(completed, **fields)``: a rich bar on a terminal, plain lines otherwise.
    Field values are shown as given: give each its label or unit (``loss="loss 3.090"``)."""
    if not interactive():
        plain = PlainProgress(description, total, unit=unit)
        yield plain.update
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn()]
    columns += [TextColumn(unit)] if unit else []
    columns += [TextColumn(f"{{task.fields[{name}]}}") for name in fields]
    columns += [TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(description, total=total, **{name: "" for name in fields})

        def update(completed: int, total: int | None = None, **values) -> None:
            if total is not None:
                bar.update(task, total=total)
            bar.update(task, completed=completed, **{k: str(v) for k, v in values.items()})

        yield update
