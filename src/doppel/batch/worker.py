"""What a batch worker does, wherever it runs (this process, a Ray actor on another machine): merge chunks
of shots and evaluate finished ones, from data alone. It never opens the workspace database; the driver
(:mod:`doppel.batch.driver`) reads what a shot needs into a :class:`ShotData` and writes back every result.

Files it touches: the shot's input (read), its chunk files and their done-markers in the render's
``chunks/`` folder, and the inference cache (encrypted with the workspace's key, which it reads from
``keys/``: secrets never go through Ray's object store). On several machines these live on a shared
file system; the database is only ever opened by the driver.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from doppel.core.errors import InputError
from doppel.core.hashing import file_sha256
from doppel.core.swap import Swapper
from doppel.eval.pipeline import EvalRequest, References
from doppel.eval.pipeline import evaluate as run_eval
from doppel.eval.report import EvalReport
from doppel.io.atomic import write_text_atomic
from doppel.io.video import VideoInfo
from doppel.merge.cache import InferenceCache
from doppel.merge.chunk import ChunkReport, FrameRange, run_chunk
from doppel.merge.provenance import Provenance
from doppel.merge.settings import FrameSettings
from doppel.merge.stages import Destination, Person, RunContext, StageTimer
from doppel.provenance.keys import cache_key
from doppel.segment.segmenter import Segmenter, load_segmenter
from doppel.segment.store import WEIGHTS as SEGMENTER_WEIGHTS
from doppel.store.records import ConsentRecord, FrameRow, ModelRecord
from doppel.workflow.models import load_model

SwapperLoader = Callable[[ModelRecord], Swapper]


@dataclass(frozen=True)
class OtherPerson:
    """A further person a shot swaps in the same pass (``model = [...]`` in the job file)."""

    model: ModelRecord
    dest: Destination
    cache_folder: Path
    consent: ConsentRecord  # of the model's source identity, listed in the credentials too


@dataclass(frozen=True)
class ShotData:
    """Everything a worker needs to merge any chunk of one shot (sent to each worker once)."""

    name: str
    input: Path
    info: VideoInfo
    model: ModelRecord
    dest: Destination
    frame_settings: FrameSettings
    segmenter: Path | None  # the face segmenter's folder when a frame is set to occlusion=segment, else None
    segmenter_sha256: str  # its weights' checksum ("" without one): the copy a worker loads must match it
    render_uid: str
    payload: int
    consent: ConsentRecord
    source_identity: str
    keys_dir: Path  # the workspace's keys/: the worker reads the inference cache's key there (it never travels)
    cache_folder: Path
    chunk_dir: Path
    crf: int
    preset: str
    batch: int
    others: tuple[OtherPerson, ...] = ()  # composited after the first person, in order


@dataclass(frozen=True)
class ChunkTask:
    """One chunk of a shot. ``key`` names exactly what it merges (render, model, faces, settings, range,
    encoding): a done-marker with the same key is a finished chunk an earlier run left."""

    shot: str
    index: int
    frames: FrameRange
    key: str

    def path(self, chunk_dir: Path) -> Path:
        return chunk_dir / f"{self.frames.start:07d}-{self.frames.stop:07d}.mp4"

    def marker(self, chunk_dir: Path) -> Path:
        return self.path(chunk_dir).with_suffix(".json")


@dataclass
class ChunkResult:
    shot: str
    index: int
    key: str
    path: Path
    report: ChunkReport
    worker: str  # host:pid that merged it
    load_seconds: float = 0.0  # model (and segmenter) load paid by this task (0 once the worker holds them)
    reused: bool = False  # a finished chunk of an earlier run
    started: float = 0.0  # epoch seconds on the worker: task began, task ended
    finished: float = 0.0


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _report_json(report: ChunkReport) -> dict[str, object]:
    data = asdict(report)
    data["rows"] = [[r.frame_index, r.status, r.occlusion, r.shot_cut] for r in report.rows]
    return data


def read_marker(task: ChunkTask, chunk_dir: Path) -> ChunkResult | None:
    """The finished chunk an earlier run left for ``task`` (its video and a marker with the same key), or None."""
    path, marker = task.path(chunk_dir), task.marker(chunk_dir)
    try:
        data = json.loads(marker.read_text())
        if data.get("key") != task.key or not path.is_file():
            return None
        rep = dict(data["report"])
        rep["rows"] = [FrameRow(int(i), str(s), o, bool(c)) for i, s, o, c in rep["rows"]]
        report = ChunkReport(**rep)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if len(report.rows) != task.frames.frames:
        return None
    return ChunkResult(task.shot, task.index, task.key, path, report, str(data.get("worker", "")), reused=True)


class ShotWorker:
    """Merges chunks and evaluates shots; holds each model it was asked for, loaded once (``loader``:
    :func:`doppel.workflow.models.load_model` unless a test or benchmark gives another)."""

    def __init__(self, loader: SwapperLoader | None = None) -> None:
        self._loader = loader or load_model
        self._models: dict[tuple[str, str, int], Swapper] = {}
        self._segmenters: dict[str, Segmenter] = {}  # by weights checksum
        self._marks: dict[tuple[str, int], Provenance] = {}
        self._keys: dict[Path, bytes] = {}

    def swapper(self, model: ModelRecord) -> tuple[Swapper, float]:
        """The model's network and the seconds spent loading it now (0 when already held)."""
        key = (str(model.path), model.updated_at, model.step)
        found = self._models.get(key)
        if found is not None:
            return found, 0.0
        t0 = time.perf_counter()
        net = self._models[key] = self._loader(model)
        return net, time.perf_counter() - t0

    def segmenter(self, shot: ShotData) -> tuple[Segmenter | None, float]:
        """The shot's face segmenter (None when no frame uses it) and the seconds spent loading it now (0 when
        already held). A segmenter retrained since the driver read the shot is refused, not merged with."""
        if shot.segmenter is None:
            return None, 0.0
        found = self._segmenters.get(shot.segmenter_sha256)
        if found is not None:
            return found, 0.0
        t0 = time.perf_counter()
        if file_sha256(shot.segmenter / SEGMENTER_WEIGHTS) != shot.segmenter_sha256:
            raise InputError("the face segmenter changed after this batch read it; run the batch again",
                             path=shot.segmenter)
        seg = self._segmenters[shot.segmenter_sha256] = load_segmenter(shot.segmenter)
        return seg, time.perf_counter() - t0

    def _cache_key(self, keys_dir: Path) -> bytes:
        key = self._keys.get(keys_dir)
        if key is None:
            key = self._keys[keys_dir] = cache_key(keys_dir)
        return key

    def _provenance(self, shot: ShotData) -> Provenance:
        key = (shot.render_uid, shot.payload)
        prov = self._marks.get(key)
        if prov is None:
            prov = Provenance(shot.keys_dir, shot.consent, shot.source_identity)  # checks the consent again
            for other in shot.others:
                prov.add_source(other.consent, other.model.src_identity or "")
            prov.set_render(shot.render_uid, shot.payload)
            self._marks = {key: prov}  # the watermark of the shot at hand only
        return prov

    def merge_chunk(self, shot: ShotData, task: ChunkTask,
                    progress: Callable[[int], None] = lambda done: None) -> ChunkResult:
        """Merge one chunk into its file in ``shot.chunk_dir`` and leave its done-marker beside it."""
        started = time.time()
        net, loaded = self.swapper(shot.model)
        seg, seg_loaded = self.segmenter(shot)
        key = self._cache_key(shot.keys_dir)
        people = []
        for other in shot.others:
            other_net, other_loaded = self.swapper(other.model)
            loaded += other_loaded
            people.append(Person(other_net, other.model, other.dest, InferenceCache(other.cache_folder, key)))
        ctx = RunContext(swapper=net, model=shot.model, dest=shot.dest, frame_settings=shot.frame_settings,
                         cache=InferenceCache(shot.cache_folder, key), provenance=self._provenance(shot),
                         layers=None, batch=max(1, shot.batch), stages=StageTimer(), stop=threading.Event(),
                         segmenter=seg, others=people)
        shot.chunk_dir.mkdir(parents=True, exist_ok=True)
        path = task.path(shot.chunk_dir)
        report = run_chunk(ctx, shot.info, shot.input, task.frames, path, crf=shot.crf, preset=shot.preset,
                           progress=lambda done, total: progress(done))
        result = ChunkResult(task.shot, task.index, task.key, path, report, worker_name(), loaded + seg_loaded,
                             started=started, finished=time.time())
        write_text_atomic(task.marker(shot.chunk_dir), json.dumps(
            {"key": task.key, "worker": result.worker, "report": _report_json(report)}, sort_keys=True))
        return result

    def evaluate(self, request: EvalRequest, refs: References) -> EvalReport:
        """``doppel eval`` of a finished shot (its contact sheet is written where ``request.sheet`` says)."""
        return run_eval(request, refs)
