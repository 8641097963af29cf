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


class PlainProgress:
    """Progress as plain lines (logs, CI): at most one line every ``every`` seconds."""

    def __init__(self, description: str, total: int, every: float = 5.0):
        self.description, self.total, self.every = description, total, every
        self.started = self.last = time.perf_counter()

    def update(self, completed: int, total: int | None = None, **fields) -> None:
        if total is not None:
            self.total = total
        now = time.perf_counter()
        if now - self.last < self.every and completed < self.total:
            return
        self.last = now
        elapsed = now - self.started
        extra = " ".join(f"{k}={v}" for k, v in fields.items())
        rate = completed / elapsed if elapsed > 0 else 0.0
        eta = (self.total - completed) / rate if rate > 0 else float("nan")
        print(f"{self.description}: {completed}/{self.total} {extra} elapsed={elapsed:.0f}s eta={eta:.0f}s",
              file=sys.stderr, flush=True)


@contextmanager
def progress_bar(description: str, total: int, *fields: str):
    """Yields ``update(completed, **fields)``: a rich bar on a terminal, plain lines otherwise."""
    if not interactive():
        plain = PlainProgress(description, total)
        yield plain.update
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn()]
    columns += [TextColumn(f"{{task.fields[{name}]}}") for name in fields]
    columns += [TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(description, total=total, **{name: "" for name in fields})

        def update(completed: int, total: int | None = None, **values) -> None:
            if total is not None:
                bar.update(task, total=total)
            bar.update(task, completed=completed, **{k: str(v) for k, v in values.items()})

        yield update
