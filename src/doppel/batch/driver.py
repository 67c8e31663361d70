"""The batch driver: the one process that opens the workspace. It reads the job file's shots, skips the
finished ones, prepares each of the others (faces, render, settings, chunks), hands chunks and
evaluations to an :class:`~doppel.batch.executor.Executor`, writes every result back (frame rows, the
render's end, the joined and signed output, the eval report) and keeps a :class:`BatchStatus`.

:func:`run_batch` reads top to bottom: 1. check every shot, 2. skip what is finished, 3. prepare shots as
workers need work and dispatch their chunks, 4. collect outcomes until nothing is left, 5. record the
batch's end. One shot's failure is its own: the others go on, and a rerun (or ``doppel batch retry``)
takes it up again, reusing its finished chunks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from doppel.batch.executor import Executor, Outcome
from doppel.batch.jobfile import JobFile, Shot
from doppel.batch.plan import chunk_size
from doppel.batch.shots import Prepared, check, eval_report_path, finalize, finished, prepare
from doppel.batch.status import OVER, BatchStatus, ShotState, ShotStatus
from doppel.batch.worker import ChunkResult, read_marker
from doppel.core.errors import DoppelError
from doppel.io.video import VideoInfo
from doppel.store import Workspace
from doppel.workflow.evaluate import build_request, references

log = logging.getLogger(__name__)

JOB_KIND = "batch"
SAVE_EVERY = 5.0  # seconds between writes of the status into the batch's jobs row
TICK_EVERY = 0.5  # seconds between progress callbacks while waiting

StatusFn = Callable[[BatchStatus], None]


@dataclass
class _ShotRun:
    shot: Shot
    status: ShotStatus
    info: VideoInfo | None = None
    prep: Prepared | None = None
    results: dict[int, ChunkResult] = field(default_factory=dict)
    merged: bool = False  # output joined, signed and its render done (what fails later is the evaluation)


class _Driver:
    def __init__(self, ws: Workspace, job: JobFile, executor: Executor, names: Sequence[str] | None,
                 progress: StatusFn) -> None:
        self.ws, self.job, self.ex, self.progress = ws, job, executor, progress
        shots = [job.shot(n) for n in names] if names is not None else list(job.shots)
        self.runs = {s.name: _ShotRun(s, ShotStatus(s.name, str(s.output))) for s in shots}
        self.status = BatchStatus(str(job.path), str(ws.root), executor.runner, executor.workers,
                                  [r.status for r in self.runs.values()])
        self.todo: list[_ShotRun] = []
        self.size = 0
        self.job_id = 0
        self._saved = self._ticked = 0.0

    # -- 1-2: check every shot, skip finished ones ------------------------------------------------------
    def start(self) -> None:
        self.job_id = self.ws.jobs.start(JOB_KIND, {"jobfile": str(self.job.path), "runner": self.ex.runner,
                                                    "shots": list(self.runs)})
        for run in self.runs.values():
            st = run.status
            try:
                run.info = check(run.shot)
                st.frames = run.info.frame_count
                render, merged, evaluated = finished(self.ws, run.shot)
            except DoppelError as exc:
                self.fail(run, exc)
                continue
            st.render = render.uid if render is not None and merged else None
            if evaluated:
                st.state, st.done, st.reused = "skipped", st.frames, st.frames
            elif merged:
                st.done = st.reused = st.frames
                self.evaluate(run)
            else:
                self.todo.append(run)
        counts = [r.status.frames for r in self.todo]
        self.size = chunk_size(counts, self.ex.workers, self.job.options.chunk_frames)
        self.save(force=True)

    # -- 3: prepare shots and dispatch their chunks --------------------------------------------------------
    def dispatch_more(self) -> None:
        while self.todo and self.ex.queued() < max(1, self.ex.workers):
            self.dispatch(self.todo.pop(0))

    def dispatch(self, run: _ShotRun) -> None:
        st = run.status
        st.state, st.started = "preparing", time.time()
        self.tick(force=True)
        t0 = time.perf_counter()
        try:
            assert run.info is not None
            run.prep = prep = prepare(self.ws, run.shot, run.info, self.size)
        except Exception as exc:  # the shot's own trouble (bad input, no consent, ...): the others go on
            self.fail(run, exc)
            return
        finally:
            self._overhead("prepare", time.perf_counter() - t0)
        st.render, st.chunks, st.state = prep.render.uid, len(prep.tasks), "merging"
        handle = None
        for task in prep.tasks:
            done = read_marker(task, prep.data.chunk_dir)
            if done is not None:  # finished by an earlier run
                self.take_chunk(run, done)
                continue
            handle = handle if handle is not None else self.ex.share(prep.data)
            self.ex.merge(handle, task)
        if len(run.results) == len(prep.tasks):
            self.finish_merge(run)

    # -- 4: outcomes -------------------------------------------------------------------------------------
    def collect(self, outcome: Outcome) -> None:
        run = self.runs[outcome.shot]
        if run.status.state in OVER:
            return  # work of a shot that already failed
        if outcome.error is not None:
            self.fail(run, outcome.error, "eval: " if outcome.kind == "eval" else "")
            return
        if outcome.chunk is not None:
            res = outcome.chunk
            self._overhead("scheduling", max(0.0, res.started - outcome.dispatched)
                           + max(0.0, outcome.received - res.finished))
            self._overhead("model_load", res.load_seconds)
            self.take_chunk(run, res)
            assert run.prep is not None
            if len(run.results) == len(run.prep.tasks):
                self.finish_merge(run)
        elif outcome.eval is not None:
            path = eval_report_path(run.shot)
            outcome.eval.write(path)
            run.status.eval = {"report": str(path), "sheet": outcome.eval.sheet}
            self.finish(run, "done")

    def take_chunk(self, run: _ShotRun, res: ChunkResult) -> None:
        assert run.prep is not None
        if res.index in run.results:
            return  # a retried task that reported twice: counted once
        run.results[res.index] = res
        self.ws.renders.record_frames(run.prep.render.id, res.report.rows)
        st = run.status
        st.chunks_done = len(run.results)
        st.done = sum(len(r.report.rows) for r in run.results.values())
        st.reused += len(res.report.rows) if res.reused else 0

    def finish_merge(self, run: _ShotRun) -> None:
        assert run.prep is not None
        run.status.state, run.status.running_on = "joining", {}
        self.tick(force=True)
        try:
            report = finalize(self.ws, run.prep, list(run.results.values()))
        except Exception as exc:
            self.fail(run, exc)
            return
        run.merged = True
        self._overhead("join", report["join_seconds"])
        self._overhead("credentials", report["credentials_seconds"])
        run.status.eval = None
        run.status.report = report
        if run.shot.eval:
            self.evaluate(run)
        else:
            self.finish(run, "done")

    def evaluate(self, run: _ShotRun) -> None:
        run.status.state = "evaluating"
        run.merged = True
        try:
            request = build_request(self.ws, render=run.status.render or "")  # as `doppel eval --render`
            self.ex.evaluate(run.shot.name, request, references(self.ws, request))
        except DoppelError as exc:
            self.fail(run, exc, "eval: ")

    def finish(self, run: _ShotRun, state: ShotState) -> None:
        st = run.status
        st.state = state
        st.finished = time.time()
        st.running_on = {}
        self.save(force=True)

    def fail(self, run: _ShotRun, exc: BaseException, what: str = "") -> None:
        st = run.status
        st.state, st.finished, st.running_on = "failed", time.time(), {}
        st.error = what + (exc.message if isinstance(exc, DoppelError) else f"{type(exc).__name__}: {exc}")
        log.warning("shot %s failed: %s", st.name, st.error)
        self.ex.drop(st.name)
        if run.prep is not None and not run.merged:
            self.ws.renders.finish(run.prep.render.id, "failed")
        self.save(force=True)

    def interrupt(self) -> None:
        for run in self.runs.values():
            if run.status.state not in OVER:
                if run.prep is not None and not run.merged:
                    self.ws.renders.finish(run.prep.render.id, "interrupted")
                self.finish(run, "interrupted")

    # -- progress --------------------------------------------------------------------------------------------
    def tick(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._ticked < TICK_EVERY:
            return
        self._ticked = now
        live: dict[str, dict[str, str]] = {}
        partial: dict[str, int] = {}
        for (shot, index), r in self.ex.running().items():
            live.setdefault(shot, {})[str(index)] = r.worker
            partial[shot] = partial.get(shot, 0) + r.done
        for run in self.runs.values():
            st = run.status
            if st.state == "merging":
                st.running_on = live.get(st.name, {})
                st.done = sum(len(r.report.rows) for r in run.results.values()) + partial.get(st.name, 0)
        self.progress(self.status)
        self.save()

    def save(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.job_id and (force or now - self._saved >= SAVE_EVERY):
            self._saved = now
            self.ws.jobs.update(self.job_id, self.status.to_dict())

    def _overhead(self, name: str, seconds: float) -> None:
        self.status.overheads[name] = self.status.overheads.get(name, 0.0) + seconds

    # -- the loop -------------------------------------------------------------------------------------------
    def run(self) -> BatchStatus:
        self.start()
        try:
            while True:
                self.dispatch_more()
                if not self.ex.busy() and not self.todo:
                    break
                for outcome in self.ex.results(TICK_EVERY):
                    self.collect(outcome)
                self.tick()
        except KeyboardInterrupt:
            self.interrupt()
            self.status.finished = time.time()
            self.ws.jobs.finish(self.job_id, "interrupted", self.status.to_dict())
            raise
        self.status.finished = time.time()
        self.ws.jobs.finish(self.job_id, "done" if self.status.ok else "failed", self.status.to_dict())
        self.tick(force=True)
        return self.status


def run_batch(ws: Workspace, job: JobFile, executor: Executor, *, shots: Sequence[str] | None = None,
              progress: StatusFn = lambda status: None) -> BatchStatus:
    """Run the job file's shots (or just ``shots``) with ``executor``; returns the final status (shots that
    failed say why in it; nothing is raised for them). Ctrl-C marks the shots under way interrupted."""
    driver = _Driver(ws, job, executor, shots, progress)
    executor.tick = driver.tick
    return driver.run()
