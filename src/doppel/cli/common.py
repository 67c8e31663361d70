"""What every subcommand shares: JSON output, progress bars, and the error boundary."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
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

from doppel.core.progress import ProgressFn

console = Console(stderr=True)  # human-facing text goes to stderr; stdout stays clean for --json

JsonOpt = typer.Option(False, "--json", help="Print a machine-readable JSON report on stdout.")


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


@contextlib.contextmanager
def progress_bar(label: str, unit: str = "frames", *, enabled: bool = True) -> Iterator[ProgressFn]:
    """A progress bar with rate and ETA, as a callback for library code; silent when disabled."""
    if not enabled or (not console.is_terminal and not sys.stderr.isatty()):
        # Not a terminal (CI, pipes): no live bar, but say what is happening.
        if enabled:
            console.print(f"{label} ...")

        def quiet(done: int, total: int | None, /) -> None:
            return None

        yield quiet
        return
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
               _RateColumn(unit), TextColumn("ETA"), TimeRemainingColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int | None, /) -> None:
            bar.update(task, completed=done, total=total)

        yield update
