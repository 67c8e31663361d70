"""The in-process runner: a batch's work done one piece at a time in this process, by the same
:class:`~doppel.batch.worker.ShotWorker` a Ray actor holds (so models load once for the whole batch).
Each merge still overlaps decoding, inference, compositing and encoding in threads, as ``doppel merge``
does; without ``chunk_frames`` every shot is one chunk."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from doppel.batch.executor import Outcome, Running
from doppel.batch.worker import ChunkTask, ShotData, ShotWorker, SwapperLoader, worker_name
from doppel.eval.pipeline import EvalRequest, References


@dataclass(frozen=True)
class _Job:
    shot: str
    data: ShotData | None = None
    task: ChunkTask | None = None
    request: EvalRequest | None = None
    refs: References | None = None


class LocalExecutor:
    runner = "in-process"
    workers = 1

    def __init__(self, loader: SwapperLoader | None = None) -> None:
        self.worker = ShotWorker(loader)
        self.tick: Callable[[], None] = lambda: None  # set by the driver
        self._queue: deque[_Job] = deque()
        self._running: dict[tuple[str, int], Running] = {}
        self._last_tick = 0.0

    def share(self, data: ShotData) -> object:
        return data

    def merge(self, shot: object, task: ChunkTask) -> None:
        assert isinstance(shot, ShotData)
        self._queue.append(_Job(task.shot, data=shot, task=task))

    def evaluate(self, name: str, request: EvalRequest, refs: References) -> None:
        self._queue.append(_Job(name, request=request, refs=refs))

    def drop(self, name: str) -> None:
        self._queue = deque(j for j in self._queue if j.shot != name)

    def queued(self) -> int:
        return len(self._queue)

    def busy(self) -> bool:
        return bool(self._queue)

    def running(self) -> dict[tuple[str, int], Running]:
        return dict(self._running)

    def results(self, timeout: float) -> list[Outcome]:
        """Run the next queued piece of work here and now (``timeout`` does not apply: it runs to its end)."""
        if not self._queue:
            return []
        job = self._queue.popleft()
        started = time.time()
        try:
            if job.task is not None:
                assert job.data is not None
                task = job.task
                key = (task.shot, task.index)
                self._running[key] = Running(0, worker_name())

                def progress(done: int) -> None:
                    self._running[key] = Running(done, worker_name())
                    now = time.monotonic()
                    if now - self._last_tick >= 0.25:
                        self._last_tick = now
                        self.tick()

                try:
                    chunk = self.worker.merge_chunk(job.data, task, progress)
                finally:
                    self._running.pop(key, None)
                return [Outcome("chunk", job.shot, chunk=chunk, dispatched=started, received=time.time())]
            assert job.request is not None and job.refs is not None
            report = self.worker.evaluate(job.request, job.refs)
            return [Outcome("eval", job.shot, eval=report, dispatched=started, received=time.time())]
        except Exception as exc:  # a shot's failure is its own; KeyboardInterrupt stops the batch
            return [Outcome("chunk" if job.task is not None else "eval", job.shot, error=exc, dispatched=started,
                            received=time.time())]

    def close(self) -> None:
        self._queue.clear()
