"""`doppel batch`: many shots from one TOML job file, in this process or on a Ray cluster."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table

from doppel.batch import run as batch
from doppel.batch.driver import StatusFn
from doppel.batch.jobfile import load_jobfile
from doppel.batch.status import COLUMNS, BatchStatus, clock, table_rows
from doppel.cli.common import JsonOpt, console, emit_json, sigterm_interrupts
from doppel.store import Workspace

app = typer.Typer(help="Many shots from one job file, on this machine or a Ray cluster.", no_args_is_help=True)

JobsArg = typer.Argument(..., help="The TOML job file: a [defaults] table and one [[shot]] table per shot.")
WsArg = typer.Argument(..., help="The workspace holding the models, faces and renders.")
RayOpt = typer.Option(None, "--ray", metavar="auto|HOST:PORT|local",
                      help="Run on Ray: auto (this machine's cluster or RAY_ADDRESS), a head node's HOST:PORT, "
                           "or local (a private Ray instance). Default: in this process.")


@contextlib.contextmanager
def _live(enabled: bool) -> Iterator[StatusFn]:
    """A bar per shot and one for the batch (a line a minute when not on a terminal)."""
    if not enabled:
        yield lambda status: None
        return
    if not console.is_terminal and not sys.stderr.isatty():
        last = [0.0]

        def line(status: BatchStatus) -> None:
            if time.monotonic() - last[0] >= 60:
                last[0] = time.monotonic()
                fps = f"{status.fps:.1f}" if status.fps else "-"
                console.print(f"batch: {status.done}/{status.frames} frames, {fps} frames/s, ETA {clock(status.eta)}; "
                              + ", ".join(f"{n} {k}" for k, n in sorted(status.counts().items())), highlight=False)

        yield line
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"))
    with Progress(*columns, console=console, transient=False) as bar:
        tasks: dict[str, TaskID] = {}

        def draw(status: BatchStatus) -> None:
            for s in [*status.shots, None]:
                name = "all" if s is None else s.name
                if name not in tasks:
                    tasks[name] = bar.add_task(name, total=None, info="")
                done, total = (status.done, status.frames) if s is None else (s.done, s.frames)
                fps = status.fps if s is None else s.fps
                state = "" if s is None else f"{s.state} "
                info = f"{state}{fps:.1f} frames/s ETA {clock(status.eta if s is None else s.eta)}" if fps else state
                bar.update(tasks[name], completed=done, total=total or None, info=info)

        yield draw


def _summary(status: BatchStatus, title: str) -> None:
    table = Table(title=title)
    for col in COLUMNS:
        table.add_column(col, justify="right" if col in ("frames", "frames/s", "ETA") else "left")
    for row in table_rows(status):
        table.add_row(*row)
    console.print(table)
    if status.overheads:
        console.print("overheads (s): " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(status.overheads.items())),
                      highlight=False)


def _run(jobs: Path, workspace: Path, ray: str | None, json_out: bool, retry: bool) -> None:
    job = load_jobfile(jobs)
    with Workspace.open(workspace) as ws:
        shots = batch.to_retry(ws, job) if retry else None
        if shots == []:
            console.print("nothing to retry: no shot of the last run failed or was interrupted")
            status = batch.current(ws, job)
        else:
            with _live(not json_out) as progress, sigterm_interrupts():
                status = batch.run(ws, job, ray=ray, shots=shots, progress=progress)
    if json_out:
        emit_json(status.to_dict())
    else:
        _summary(status, f"batch {job.path.name}: {status.runner}, {status.workers} worker(s)")
    if not status.ok:
        raise typer.Exit(1)


def run(jobs: Path = JobsArg, workspace: Path = WsArg, ray: str | None = RayOpt, json_out: bool = JsonOpt) -> None:
    """Merge every shot of JOBS into its output (and evaluate it where the shot asks).

    Finished shots are skipped and unfinished ones resumed, reusing their finished chunks. A shot that
    fails does not stop the others; the exit status is 1 when any shot failed.
    """
    _run(jobs, workspace, ray, json_out, retry=False)


def retry(jobs: Path = JobsArg, workspace: Path = WsArg, ray: str | None = RayOpt, json_out: bool = JsonOpt) -> None:
    """Run again only the shots of JOBS that the last run left failed or interrupted."""
    _run(jobs, workspace, ray, json_out, retry=True)


def status(jobs: Path = JobsArg, workspace: Path = WsArg, json_out: bool = JsonOpt) -> None:
    """Where each shot of JOBS stands: done, under way, failed (and why), frames, frames/s, time left."""
    job = load_jobfile(jobs)
    with Workspace.open(workspace) as ws:
        state = batch.current(ws, job)
    if json_out:
        emit_json(state.to_dict())
        return
    _summary(state, f"batch {job.path.name}")
