"""What every subcommand shares: JSON output, progress bars, and the error boundary."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import time
from collections.abc import Iterator
from types import FrameType
from typing import Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from doppel.core.progress import ProgressFn, no_progress

# Human-facing text goes to stderr (stdout stays clean for --json); piped to a file or CI, lines are not
# wrapped at 80 columns.
console = Console(stderr=True, soft_wrap=not sys.stderr.isatty())

JsonOpt = typer.Option(False, "--json", metavar="", help="Print a machine-readable JSON report on stdout.")


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


class _RateColumn(TextColumn):
    """Items per second, e.g. frames/s or it/s."""

    def __init__(self, unit: str) -> None:
        super().__init__("")
        self.unit = unit

    def render(self, task: Any) -> Any:  # rich's Task
        speed = task.finished_speed or task.speed
        return f"{speed:6.1f} {self.unit}/s" if speed else f"   -- {self.unit}/s"


def clock(seconds: float) -> str:
    """``H:MM:SS``."""
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class LineProgress:
    """Progress for logs and CI: one line every ``every`` seconds with count, rate and ETA."""

    def __init__(self, label: str, unit: str, every: float = 60.0) -> None:
        self.label, self.unit, self.every = label, unit, every
        self.start = self.last = time.monotonic()

    def __call__(self, done: int, total: int | None, /) -> None:
        now = time.monotonic()
        if now - self.last < self.every:
            return
        self.last = now
        rate = done / (now - self.start) if now > self.start else 0.0
        eta = f", ETA {clock((total - done) / rate)}" if total and rate > 0 else ""
        of = f"/{total}" if total else ""
        console.print(f"{self.label}: {done}{of} {self.unit}, {rate:.1f} {self.unit}/s{eta}", highlight=False)


@contextlib.contextmanager
def progress_bar(label: str, unit: str = "frames", *, enabled: bool = True) -> Iterator[ProgressFn]:
    """A progress bar with rate and ETA, as a callback for library code; silent when disabled."""
    if not enabled:
        yield no_progress
        return
    if not console.is_terminal and not sys.stderr.isatty():
        # Not a terminal (CI, logs): no live bar, but a line when it starts and about once a minute.
        console.print(f"{label.strip()} ...", highlight=False)
        yield LineProgress(label.strip(), unit)
        return
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
               _RateColumn(unit), TextColumn("ETA"), TimeRemainingColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int | None, /) -> None:
            bar.update(task, completed=done, total=total)

        yield update


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM stops a long command like Ctrl-C: what was under way is marked interrupted, no partial output
    stays."""
    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
