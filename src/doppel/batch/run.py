"""The batch as the CLI (and benchmarks) drive it: pick where the work runs, run the job file, say where it
stands (from the workspace alone, in another terminal or after a crash), and which shots to retry."""

from __future__ import annotations

from collections.abc import Sequence

from doppel.batch.driver import JOB_KIND, StatusFn, run_batch
from doppel.batch.executor import Executor
from doppel.batch.jobfile import BatchOptions, JobFile
from doppel.batch.local import LocalExecutor
from doppel.batch.shots import finished
from doppel.batch.status import BatchStatus, ShotStatus
from doppel.batch.worker import SwapperLoader
from doppel.core.errors import DoppelError
from doppel.io.video import probe
from doppel.store import Workspace


def executor_for(ray: str | None, options: BatchOptions, loader: SwapperLoader | None = None) -> Executor:
    """In this process (``ray`` None), or on the Ray cluster at ``ray`` (``auto``, ``HOST:PORT``, ``local``)."""
    if ray is None:
        return LocalExecutor(loader)
    from doppel.batch.ray_runner import RayExecutor  # Ray is an extra: imported only when asked for

    return RayExecutor(ray, loader=loader, worker_cpus=options.worker_cpus)


def run(ws: Workspace, job: JobFile, *, ray: str | None = None, shots: Sequence[str] | None = None,
        progress: StatusFn = lambda status: None, loader: SwapperLoader | None = None) -> BatchStatus:
    """Run ``job`` (or its ``shots``) in this process or on Ray; finished shots are skipped, unfinished ones
    resumed. Returns the final status; see :func:`doppel.batch.driver.run_batch`."""
    executor = executor_for(ray, job.options, loader)
    try:
        return run_batch(ws, job, executor, shots=shots, progress=progress)
    finally:
        executor.close()


def last_run(ws: Workspace, job: JobFile) -> tuple[str | None, BatchStatus | None]:
    """The status of the job file's last batch run as it stored it (its ``jobs`` row's state and result)."""
    record = ws.jobs.latest(JOB_KIND, jobfile=str(job.path))
    if record is None or not record.result:
        return None, None
    return record.status, BatchStatus.from_dict(record.result)


def current(ws: Workspace, job: JobFile) -> BatchStatus:
    """Where each shot of ``job`` stands: done (from the workspace: render done, output and eval report
    present), else what the last run recorded, with the frames merged so far from the render's rows."""
    state, last = last_run(ws, job)
    known = {s.name: s for s in last.shots} if last is not None else {}
    shots = []
    for shot in job.shots:
        st = known.get(shot.name) or ShotStatus(shot.name, str(shot.output))
        try:
            render, _, evaluated = finished(ws, shot)
            st.frames = st.frames or probe(shot.input).frame_count
        except DoppelError as exc:
            st.state, st.error = "failed", exc.message
            shots.append(st)
            continue
        if evaluated:
            st.state, st.done, st.error = "done", st.frames, None
        elif render is not None:
            st.render = render.uid
            st.done = min(st.frames, max(st.done, len(ws.renders.frames(render.id))))
            if st.state in ("done", "skipped"):  # the output (or its eval report) went missing since
                st.state, st.done, st.reused = "pending", 0, 0
            elif state not in (None, "running") and st.state not in ("failed", "interrupted"):
                st.state = "interrupted"
        shots.append(st)
    status = BatchStatus(str(job.path), str(ws.root), last.runner if last else "-", last.workers if last else 0,
                         shots)
    if last is not None:
        status.started, status.finished, status.overheads = last.started, last.finished, last.overheads
    return status


def to_retry(ws: Workspace, job: JobFile) -> list[str]:
    """The shots the last run left failed or interrupted, in job order (``doppel batch run`` takes up every
    unfinished shot; ``retry`` only these, e.g. after fixing what made them fail)."""
    return [s.name for s in current(ws, job).shots if s.state in ("failed", "interrupted")]
