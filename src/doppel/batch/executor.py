"""What the batch driver asks of whatever runs its work: this process (:mod:`doppel.batch.local`) or a
Ray cluster (:mod:`doppel.batch.ray_runner`). The driver queues chunks and evaluations and collects
outcomes; an executor decides where and when they run, and reports chunks under way."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from doppel.batch.worker import ChunkResult, ChunkTask, ShotData
from doppel.eval.pipeline import EvalRequest, References
from doppel.eval.report import EvalReport


@dataclass
class Outcome:
    """A finished piece of work: its result or the error it raised. ``dispatched``/``received`` are epoch
    seconds (handed to a worker, result back in the driver): with the worker's own times they give the
    scheduling overhead."""

    kind: Literal["chunk", "eval"]
    shot: str
    chunk: ChunkResult | None = None
    eval: EvalReport | None = None
    error: BaseException | None = None
    dispatched: float = 0.0
    received: float = 0.0


@dataclass(frozen=True)
class Running:
    """A chunk under way: frames written so far and the worker (host:pid) writing them."""

    done: int
    worker: str


class Executor(Protocol):
    runner: str  # "in-process" or "ray <address>"
    workers: int  # how many chunks can run at once
    tick: Callable[[], None]  # the driver's progress redraw, for an executor that runs work in its thread

    def share(self, data: ShotData) -> object:
        """Make a shot's data available to the workers once; returns the handle to queue its chunks with."""
        ...

    def merge(self, shot: object, task: ChunkTask) -> None:
        """Queue a chunk of the shot ``shot`` (a handle from :meth:`share`)."""
        ...

    def evaluate(self, name: str, request: EvalRequest, refs: References) -> None: ...

    def drop(self, name: str) -> None:
        """Forget the queued work of shot ``name`` (it failed); work under way finishes and is ignored."""
        ...

    def queued(self) -> int:
        """Work not yet handed to a worker."""
        ...

    def busy(self) -> bool:
        """Whether any work is queued or under way."""
        ...

    def results(self, timeout: float) -> list[Outcome]:
        """Outcomes finished since the last call, waiting up to ``timeout`` seconds for the first."""
        ...

    def running(self) -> dict[tuple[str, int], Running]:
        """Chunks under way, by (shot, chunk index)."""
        ...

    def close(self) -> None: ...

