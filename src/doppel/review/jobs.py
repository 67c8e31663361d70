"""Background work of the review app (analyse, re-render, retrain the mask, export): one job at a time,
since they share the CPU and the model; the page polls a job's progress by its id."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from doppel.core.errors import DoppelError

log = logging.getLogger(__name__)


@dataclass
class Job:
    id: int
    kind: str
    render: str
    status: str = "running"  # running | done | failed
    done: int = 0
    total: int | None = None
    result: Any = None
    error: str | None = None
    started: float = field(default_factory=time.time)
    began: float | None = None  # when its work began (jobs wait for the one before them)

    def to_dict(self) -> dict[str, Any]:
        elapsed = None if self.began is None else time.time() - self.began
        fps = self.done / elapsed if elapsed and self.done else None
        eta = (self.total - self.done) / fps if fps and self.total is not None else None
        return {"id": self.id, "kind": self.kind, "render": self.render, "status": self.status,
                "done": self.done, "total": self.total, "result": self.result, "error": self.error,
                "waiting": self.began is None and self.status == "running",
                "elapsed_s": None if elapsed is None else round(elapsed, 1),
                "fps": None if fps is None else round(fps, 2), "eta_s": None if eta is None else round(eta, 1)}


class Jobs:
    """Background work (analyse, re-render, retrain the mask, export), one at a time: they share the CPU and
    the model."""

    def __init__(self) -> None:
        self.jobs: dict[int, Job] = {}
        self._run_lock = threading.Lock()
        self._lock = threading.Lock()

    def start(self, kind: str, render: str, work: Callable[[Job], Any], *, once: bool = False) -> Job:
        """Queue ``work``; with ``once``, a job of the same kind still running for the render is returned
        instead (the page starts an analysis on its own when it opens a render, maybe twice)."""
        with self._lock:
            if once:
                running = self.running(kind, render)
                if running is not None:
                    return running
            job = Job(len(self.jobs) + 1, kind, render)
            self.jobs[job.id] = job

        def run() -> None:
            with self._run_lock:
                job.began = time.time()
                try:
                    job.result = work(job)
                    job.status = "done"
                except DoppelError as exc:
                    job.error, job.status = exc.message, "failed"
                except Exception as exc:  # reported to the page, logged in full here
                    log.exception("review job %s failed", kind)
                    job.error, job.status = f"{type(exc).__name__}: {exc}", "failed"

        threading.Thread(target=run, name=f"review-{kind}-{job.id}", daemon=True).start()
        return job

    def get(self, job_id: int) -> Job | None:
        return self.jobs.get(job_id)

    def running(self, kind: str, render: str) -> Job | None:
        return next((j for j in self.jobs.values() if j.kind == kind and j.render == render
                     and j.status == "running"), None)
