"""The Ray runner: a batch's chunks and evaluations on the workers of a Ray cluster (``doppel[cluster]``).

One actor per worker slot (``worker_cpus`` CPUs each) holds a :class:`~doppel.batch.worker.ShotWorker`,
so each model loads once per worker, not once per chunk. A shot's data (faces, settings, model record,
render, consent) is put in Ray's object store once and read by every chunk of it; results come back as
return values. Workers never open the workspace: the driver writes everything.

Each actor runs one task at a time and gets the next queued one as soon as it returns (the queue lives
here, so a slow chunk never holds others behind it). A worker process that dies is restarted by Ray and
its task run again (``RETRIES`` times): chunks are written atomically under their own names and their
rows are taken once, so nothing is lost or counted twice. Workers report progress to a small board
actor that the driver reads.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from doppel.batch.executor import Outcome, Running
from doppel.batch.worker import ChunkResult, ChunkTask, ShotData, ShotWorker, SwapperLoader, worker_name
from doppel.core.errors import ConfigError
from doppel.eval.pipeline import EvalRequest, References
from doppel.eval.report import EvalReport

RETRIES = 3  # restarts of a dead worker, and reruns of the task it held
REPORT_EVERY = 0.5  # seconds between a worker's progress reports


class Board:
    """Chunks under way: (shot, index) -> (frames written, worker). A Ray actor of no CPU."""

    def __init__(self) -> None:
        self.live: dict[tuple[str, int], tuple[int, str]] = {}

    def set(self, key: tuple[str, int], done: int, worker: str) -> None:
        self.live[key] = (done, worker)

    def clear(self, key: tuple[str, int]) -> None:
        self.live.pop(key, None)

    def get(self) -> dict[tuple[str, int], tuple[int, str]]:
        return dict(self.live)


class Worker:
    """The actor: a :class:`ShotWorker` that reports progress to the board."""

    def __init__(self, loader: SwapperLoader | None, board: Any) -> None:
        self.worker = ShotWorker(loader)
        self.board = board

    def name(self) -> str:
        return worker_name()

    def merge(self, shot: ShotData, task: ChunkTask) -> ChunkResult:
        key, name, last = (task.shot, task.index), worker_name(), [time.monotonic()]
        self.board.set.remote(key, 0, name)

        def progress(done: int) -> None:
            now = time.monotonic()
            if now - last[0] >= REPORT_EVERY:
                last[0] = now
                self.board.set.remote(key, done, name)

        try:
            return self.worker.merge_chunk(shot, task, progress)
        finally:
            self.board.clear.remote(key)

    def evaluate(self, request: EvalRequest, refs: References) -> EvalReport:
        return self.worker.evaluate(request, refs)


@dataclass
class _Job:
    shot: str
    data: Any = None  # ObjectRef of the ShotData
    task: ChunkTask | None = None
    request: EvalRequest | None = None
    refs: References | None = None


LOOPBACK_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
"""Ray's switch for single-machine clusters (read when ray is imported; set here for each executor): off, a node
takes 127.0.0.1 as its address and so listens on loopback only. Off for ``--ray local``: a private instance has
no business on the network."""


def _ray(local: bool = False) -> Any:
    try:
        import ray
        import ray._private.ray_constants as constants
    except ImportError:
        raise ConfigError("--ray needs Ray: install doppel with its cluster extra (pip install 'doppel[cluster]')") \
            from None
    if local:
        constants.ENABLE_RAY_CLUSTER = False
    elif LOOPBACK_ONLY in os.environ:
        constants.ENABLE_RAY_CLUSTER = os.environ[LOOPBACK_ONLY].lower() in ("1", "true")
    else:
        constants.ENABLE_RAY_CLUSTER = not sys.platform.startswith(("darwin", "win32"))  # Ray's own default
    return ray


class RayExecutor:
    """Runs work on a Ray cluster: ``address`` is ``auto`` (the cluster this machine belongs to, or
    ``RAY_ADDRESS``), ``HOST:PORT`` of a head node, or ``local`` (a private Ray instance on this machine,
    stopped at :meth:`close`)."""

    def __init__(self, address: str, *, loader: SwapperLoader | None = None, worker_cpus: float = 1.0,
                 max_workers: int | None = None, object_store_bytes: int | None = None) -> None:
        ray = self.ray = _ray(local=address == "local")
        self.runner = f"ray {address}"
        self.tick: Callable[[], None] = lambda: None
        if ray.is_initialized():
            ray.shutdown()
        try:
            if address == "local":
                ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=False,
                         object_store_memory=object_store_bytes, logging_level="warning")
            else:
                if address != "auto":
                    _check_reachable(address)
                ray.init(address=address, log_to_driver=False, logging_level="warning")
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise ConfigError(f"cannot reach a Ray cluster at {address!r} ({str(exc).splitlines()[0][:200]}); "
                              "start one with `ray start --head` or give --ray HOST:PORT") from None
        cpus = float(ray.cluster_resources().get("CPU", 0))
        self.workers = max(1, int(cpus // worker_cpus))
        if max_workers is not None:
            self.workers = max(1, min(self.workers, max_workers))
        self.board = ray.remote(num_cpus=0)(Board).remote()
        actor = ray.remote(Worker).options(num_cpus=worker_cpus, max_restarts=RETRIES, max_task_retries=RETRIES)
        self.actors = [actor.remote(loader, self.board) for _ in range(self.workers)]
        self._queue: deque[_Job] = deque()
        self._flight: dict[Any, tuple[int, _Job, float]] = {}  # ref -> (actor index, job, dispatched at)
        self._idle = list(range(self.workers))

    # -- queueing --------------------------------------------------------------------------------------------
    def share(self, data: ShotData) -> object:
        return self.ray.put(data)

    def merge(self, shot: object, task: ChunkTask) -> None:
        self._queue.append(_Job(task.shot, data=shot, task=task))
        self._pump()

    def evaluate(self, name: str, request: EvalRequest, refs: References) -> None:
        self._queue.append(_Job(name, request=request, refs=refs))
        self._pump()

    def drop(self, name: str) -> None:
        self._queue = deque(j for j in self._queue if j.shot != name)

    def queued(self) -> int:
        return len(self._queue)

    def busy(self) -> bool:
        return bool(self._queue or self._flight)

    def _pump(self) -> None:
        while self._idle and self._queue:
            index, job = self._idle.pop(0), self._queue.popleft()
            actor = self.actors[index]
            if job.task is not None:
                ref = actor.merge.remote(job.data, job.task)
            else:
                ref = actor.evaluate.remote(job.request, job.refs)
            self._flight[ref] = (index, job, time.time())

    # -- outcomes ---------------------------------------------------------------------------------------------
    def results(self, timeout: float) -> list[Outcome]:
        self._pump()
        if not self._flight:
            return []
        ready, _ = self.ray.wait(list(self._flight), num_returns=1, timeout=timeout)
        if ready:
            ready, _ = self.ray.wait(list(self._flight), num_returns=len(self._flight), timeout=0)
        out = []
        for ref in ready:
            index, job, dispatched = self._flight.pop(ref)
            self._idle.append(index)
            try:
                value = self.ray.get(ref)
            except Exception as exc:  # the task's own error (Ray wraps it) or a worker that died too often
                out.append(Outcome("chunk" if job.task is not None else "eval", job.shot, error=_cause(exc),
                                   dispatched=dispatched, received=time.time()))
                continue
            if job.task is not None:
                out.append(Outcome("chunk", job.shot, chunk=value, dispatched=dispatched, received=time.time()))
            else:
                out.append(Outcome("eval", job.shot, eval=value, dispatched=dispatched, received=time.time()))
        self._pump()
        return out

    def running(self) -> dict[tuple[str, int], Running]:
        flying = {(j.shot, j.task.index) for _, j, _ in self._flight.values() if j.task is not None}
        try:
            live = self.ray.get(self.board.get.remote(), timeout=5)
        except Exception:  # progress is best effort; the work itself is not affected
            return {}
        return {k: Running(done, worker) for k, (done, worker) in live.items() if k in flying}

    def names(self) -> list[str]:
        """host:pid of each worker (for tests and benchmarks: the processes to watch, or kill)."""
        return list(self.ray.get([a.name.remote() for a in self.actors]))

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        self.ray.kill(self.board)
        self.ray.shutdown()


def _check_reachable(address: str, timeout: float = 10.0) -> None:
    """A head node answers at ``HOST:PORT`` (Ray itself would retry a wrong address for ever)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--ray {address!r}: expected auto, local or HOST:PORT of a Ray head node")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ConfigError(f"no Ray head node answers at {address} ({exc.strerror or exc}); start one there with "
                          f"`ray start --head --port {port}`") from None


def _cause(exc: BaseException) -> BaseException:
    """The error a task raised, without Ray's wrapping (a worker that died for good is Ray's own error)."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc
