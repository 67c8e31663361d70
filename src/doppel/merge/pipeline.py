"""The merge pipeline: decode -> align -> batched inference -> mask/colour/blend -> watermark -> encode.

Stages run in their own threads joined by small bounded queues, so decoding, inference,
compositing and encoding overlap (PyAV, OpenCV, NumPy and PyTorch release the GIL in their
heavy loops). Frames stay in order from end to end. The main thread encodes and writes the
workspace (SQLite connections belong to the thread that opened them).

Read top to bottom: :func:`merge` does the numbered steps; each stage is a named function.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from doppel.core.errors import InputError, NoFaceError
from doppel.core.progress import ProgressFn, no_progress
from doppel.core.swap import Swapper
from doppel.faceset.query import FaceRecord
from doppel.faceset.workspace import Workspace
from doppel.io.atomic import atomic_path
from doppel.io.video import Frame, VideoInfo, VideoWriter, probe, read_frames
from doppel.merge import store
from doppel.merge.cache import InferenceCache, cache_dir
from doppel.merge.composite import TemporalState, blend_into, prepare_face
from doppel.merge.layers import write_layers
from doppel.merge.model import ModelInfo, find_model, load_model
from doppel.merge.provenance import Provenance, place_sidecar, provenance_for
from doppel.merge.settings import FrameSettings, MergeSettings
from doppel.merge.sources import Destination, destination_faces
from doppel.merge.temporal import FlickerMeter, ShotCutDetector, face_region
from doppel.ops.align import estimate_transform, transform_points, warp_to_face

log = logging.getLogger(__name__)

OUTPUT_CONTAINERS = (".mp4", ".mov", ".m4v")  # H.264 + audio, and a C2PA manifest can be embedded
QUEUE_FRAMES = 16  # frames buffered between two stages
DB_FLUSH_EVERY = 64  # render_frames rows written per transaction


@dataclass(frozen=True)
class MergeRequest:
    """What to merge. ``overrides`` are ``(first, last, partial settings)``; ``identity`` is the
    destination person (default: the model's destination identity)."""

    input: Path
    output: Path
    model: str
    settings: MergeSettings = field(default_factory=MergeSettings)
    overrides: tuple[tuple[int, int, dict[str, Any]], ...] = ()
    identity: str | None = None
    layers: Path | None = None
    crf: int = 18
    preset: str = "veryfast"
    batch: int = 8


@dataclass
class MergeReport:
    render_id: int
    render_uid: str
    output: str
    resumed: bool
    frames: int = 0
    swapped: int = 0
    passthrough: int = 0
    kept: int = 0
    inference_reused: int = 0
    inference_run: int = 0
    occluded_frames: list[int] = field(default_factory=list)
    shot_cuts: list[int] = field(default_factory=list)
    flicker_ratio: float | None = None
    seconds: float = 0.0
    fps: float = 0.0
    stages: dict[str, float] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    settings_hash: str = ""
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# -- work items passed between stages -------------------------------------------------------------
@dataclass
class _Item:
    frame: Frame
    settings: MergeSettings
    face: FaceRecord | None = None
    transform: np.ndarray | None = None  # frame -> crop at the model's resolution
    landmarks: np.ndarray | None = None  # in crop pixels
    crop: np.ndarray | None = None  # float32 (S, S, 3) for inference
    swapped: np.ndarray | None = None
    learned: np.ndarray | None = None
    cached: bool = False
    output: np.ndarray | None = None
    status: str = "passthrough"
    occlusion: float | None = None
    shot_cut: bool = False


_END = object()


class _Stages:
    """Busy seconds per stage (time inside the stage's work, not waiting on a queue)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, name: str, seconds: float) -> None:
        with self._lock:
            self.seconds[name] = self.seconds.get(name, 0.0) + seconds


class _Pipe:
    """A bounded queue whose put/get give up when the run is stopping."""

    def __init__(self, stop: threading.Event) -> None:
        self.q: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_FRAMES)
        self.stop = stop

    def put(self, item: Any) -> None:
        while not self.stop.is_set():
            try:
                self.q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def get(self) -> Any:
        while not self.stop.is_set():
            try:
                return self.q.get(timeout=0.1)
            except queue.Empty:
                continue
        return _END


def crop_transform(face: FaceRecord, resolution: int, face_type: str) -> np.ndarray:
    """Frame -> crop transform at the model's resolution, from the face's smoothed alignment."""
    if face.face_type == face_type:
        return face.transform * (resolution / face.size)
    return estimate_transform(face.landmarks_smooth, resolution, face_type)  # type: ignore[arg-type]


@dataclass
class _Context:
    """Everything the stages share for one run (read-only once the run starts)."""

    swapper: Swapper
    model: ModelInfo
    dest: Destination
    frame_settings: FrameSettings
    cache: InferenceCache
    provenance: Provenance
    layers: Path | None
    batch: int
    stages: _Stages
    stop: threading.Event
    errors: list[BaseException] = field(default_factory=list)


def _guard(ctx: _Context, fn: Callable[..., None], *args: Any) -> Callable[[], None]:
    def run() -> None:
        try:
            fn(ctx, *args)
        except BaseException as exc:
            ctx.errors.append(exc)
            ctx.stop.set()

    return run


# -- stage 1: decode ------------------------------------------------------------------------------
def _decode(ctx: _Context, path: Path, out: _Pipe) -> None:
    frames = read_frames(path)
    while not ctx.stop.is_set():
        t0 = time.perf_counter()
        frame = next(frames, None)
        ctx.stages.add("decode", time.perf_counter() - t0)
        if frame is None:
            break
        out.put(frame)
    out.put(_END)


# -- stage 2: align and batched inference -----------------------------------------------------------
def _prepare(ctx: _Context, frame: Frame) -> _Item:
    s = ctx.frame_settings.at(frame.index)
    item = _Item(frame, s, face=ctx.dest.faces.get(frame.index))
    if item.face is None:
        return item
    if s.keep_original:
        item.status = "kept"
        return item
    res = ctx.swapper.resolution
    item.transform = crop_transform(item.face, res, ctx.swapper.face_type)
    item.landmarks = transform_points(item.face.landmarks_smooth, item.transform)
    item.status = "swapped"
    t0 = time.perf_counter()
    hit = ctx.cache.get(frame.index, item.transform)
    ctx.stages.add("cache", time.perf_counter() - t0)
    if hit is not None:
        item.swapped, item.learned = hit
        item.cached = True
        return item
    t0 = time.perf_counter()
    item.crop = warp_to_face(frame.image, item.transform, res).astype(np.float32) / 255.0
    ctx.stages.add("align", time.perf_counter() - t0)
    return item


def _run_batch(ctx: _Context, batch: list[_Item]) -> None:
    faces = np.stack([it.crop for it in batch])  # type: ignore[misc]
    t0 = time.perf_counter()
    swapped, masks = ctx.swapper.swap(faces)
    ctx.stages.add("infer", time.perf_counter() - t0)
    n, s = len(batch), ctx.swapper.resolution
    if swapped.shape != (n, s, s, 3) or masks.shape[:3] != (n, s, s):
        raise InputError(f"model returned faces {swapped.shape} and masks {masks.shape}, expected "
                         f"({n}, {s}, {s}, 3) and ({n}, {s}, {s}, 1)", path=ctx.model.path)
    t0 = time.perf_counter()
    for i, it in enumerate(batch):
        it.swapped = np.clip(swapped[i].astype(np.float32), 0.0, 1.0)
        it.learned = np.clip(masks[i].reshape(s, s).astype(np.float32), 0.0, 1.0)
        it.crop = None
        ctx.cache.put(it.frame.index, it.transform, it.swapped, it.learned)  # type: ignore[arg-type]
    ctx.stages.add("cache", time.perf_counter() - t0)


def _infer(ctx: _Context, inp: _Pipe, out: _Pipe) -> None:
    pending: list[_Item] = []  # in frame order; some wait for inference

    def flush() -> None:
        todo = [it for it in pending if it.crop is not None]
        for start in range(0, len(todo), ctx.batch):
            _run_batch(ctx, todo[start:start + ctx.batch])
        for it in pending:
            out.put(it)
        pending.clear()

    while True:
        frame = inp.get()
        if frame is _END:
            break
        item = _prepare(ctx, frame)
        pending.append(item)
        waiting = sum(1 for it in pending if it.crop is not None)
        if waiting == 0 or waiting >= ctx.batch or len(pending) >= QUEUE_FRAMES * 2:
            flush()
    flush()
    out.put(_END)


# -- stage 3: mask, colour, occlusion, blend, watermark, layers ----------------------------------------
class Compositor:
    """The sequential part of the merge: frames in order, with shot cuts and temporal state."""

    def __init__(self, ctx: _Context) -> None:
        self.ctx = ctx
        self.state = TemporalState()
        self.cuts = ShotCutDetector()
        self.previous_swapped = False

    def process(self, item: _Item) -> np.ndarray | None:
        """Fill ``item.output`` (watermarked) and its occlusion and cut flags; returns the face's landmark
        hull in the frame (bool ``(H, W)``, where flicker is measured) or None."""
        ctx, t0 = self.ctx, time.perf_counter()
        frame, s = item.frame, item.settings
        item.shot_cut = self.cuts.update(frame.image, s.shot_cut_threshold)
        region = None
        if item.status == "swapped":
            if item.shot_cut or not self.previous_swapped:
                self.state.reset()
            res = prepare_face(frame.image, item.transform, item.swapped, item.learned, item.landmarks,
                               item.face.landmark_score if item.face else None, s, self.state)
            item.output = blend_into(frame.image, res, s)
            item.occlusion = res.occlusion
            if ctx.layers is not None:
                t1 = time.perf_counter()
                write_layers(ctx.layers, frame.index, res.face, res.matte, res.transform,
                             (frame.image.shape[1], frame.image.shape[0]), res.occlusion)
                ctx.stages.add("layers", time.perf_counter() - t1)
                t0 += time.perf_counter() - t1
        else:
            item.output = frame.image
        if item.face is not None:
            region = face_region(item.face.landmarks_smooth, frame.image.shape)
        self.previous_swapped = item.status == "swapped"
        t1 = time.perf_counter()
        ctx.stages.add("composite", t1 - t0)
        item.output = ctx.provenance.watermark(item.output)
        ctx.stages.add("watermark", time.perf_counter() - t1)
        item.swapped = item.learned = None
        return region


def _composite(ctx: _Context, inp: _Pipe, out: _Pipe, flicker: FlickerMeter) -> None:
    compositor = Compositor(ctx)
    while True:
        item = inp.get()
        if item is _END:
            break
        region = compositor.process(item)
        t0 = time.perf_counter()
        if item.shot_cut:
            flicker.reset()
        flicker.update(item.frame.image, item.output, region)
        ctx.stages.add("measure", time.perf_counter() - t0)
        out.put(item)
    out.put(_END)


# -- the whole run ----------------------------------------------------------------------------------
def _check_output(output: Path, input_path: Path) -> None:
    if output.resolve() == input_path.resolve():
        raise InputError("output would overwrite the input; choose another name", path=output)
    if output.suffix.lower() not in OUTPUT_CONTAINERS:
        raise InputError(f"unsupported output container {output.suffix!r}; use one of "
                         f"{', '.join(OUTPUT_CONTAINERS)} (video that carries content credentials)", path=output)
    parent = output.parent if str(output.parent) else Path(".")
    if output.is_dir():
        raise InputError("is a folder; give an output file name", path=output)
    if not parent.is_dir():
        raise InputError(f"cannot write here: folder {parent} does not exist", path=output)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"cannot write here: folder {parent} is not writable", path=output)


def merge(ws: Workspace, request: MergeRequest, *, progress: ProgressFn = no_progress,
          swapper: Swapper | None = None, render_id: int | None = None) -> MergeReport:
    """Merge ``request.model`` into every frame of ``request.input``, writing ``request.output``.

    ``swapper`` replaces loading the model's network (for tests and benchmarks); the model must
    still be registered in the workspace. ``render_id`` re-runs that render (same uid and
    watermark, its overrides as they are now) instead of finding or creating one.

    Raises :class:`DoppelError` subclasses on bad input; nothing is written under
    ``request.output`` unless the whole merge succeeds.
    """
    started = time.perf_counter()
    # 1. cheap checks first: the output can be written, the input is a readable video
    _check_output(request.output, request.input)
    info = probe(request.input)
    # 2. the model's record, its identities and the consent for its source identity
    model = find_model(ws, request.model)
    prov = provenance_for(ws, model.src_identity)
    # 3. the destination person's faces in this clip (extracted now if the clip is new)
    identity = request.identity or model.dst_identity
    if identity is None:
        raise InputError(f"model {model.name!r} has no destination identity; pass --identity", path=model.path)
    dest = destination_faces(ws, request.input, identity, size=max(256, model.resolution),
                             face_type=model.face_type, progress=progress)
    if not dest.faces:
        raise NoFaceError(f"no face of {identity!r} in this video; nothing to merge", path=request.input)
    # 4. the network (the slow part of starting up, so it comes after every cheap check)
    net = swapper if swapper is not None else load_model(model)
    # 5. the render record (resumed when one with the same model, clip, output and settings exists)
    if render_id is not None:
        render, resumed = store.restart_render(ws, render_id, model_id=model.id, clip_id=dest.clip_id,
                                               consent_hash=prov.consent_hash), True
    else:
        render, resumed = store.find_or_create_render(
            ws, model_id=model.id, clip_id=dest.clip_id, output_path=request.output, settings=request.settings,
            overrides=request.overrides, consent_hash=prov.consent_hash)
    prov.set_render(render.uid, render.watermark_payload)
    report = MergeReport(render.id, render.uid, str(request.output), resumed, settings_hash=render.settings_hash,
                         settings=render.settings.model_dump())
    ctx = _Context(
        swapper=net, model=model, dest=dest, frame_settings=store.frame_settings(ws, render.id),
        cache=InferenceCache(cache_dir(ws.renders_dir(), model.fingerprint(), dest.clip_hash, net.resolution,
                                       net.face_type)),
        provenance=prov, layers=request.layers, batch=max(1, request.batch), stages=_Stages(),
        stop=threading.Event())
    status = "failed"
    try:
        # 6. run the stages, encode, then add content credentials and rename into place
        _run(ws, ctx, info, request, render.id, report, progress)
        status = "done"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        ctx.stop.set()
        store.finish_render(ws, render.id, status)
    report.seconds = time.perf_counter() - started
    report.fps = report.frames / report.seconds if report.seconds else 0.0
    report.stages = {k: round(v, 3) for k, v in sorted(ctx.stages.seconds.items())}
    report.inference_reused = ctx.cache.hits
    return report


def _run(ws: Workspace, ctx: _Context, info: VideoInfo, request: MergeRequest, render_id: int,
         report: MergeReport, progress: ProgressFn) -> None:
    decoded, inferred, composed = _Pipe(ctx.stop), _Pipe(ctx.stop), _Pipe(ctx.stop)
    flicker = FlickerMeter()
    threads = [
        threading.Thread(target=_guard(ctx, _decode, request.input, decoded), name="merge-decode", daemon=True),
        threading.Thread(target=_guard(ctx, _infer, decoded, inferred), name="merge-infer", daemon=True),
        threading.Thread(target=_guard(ctx, _composite, inferred, composed, flicker), name="merge-composite",
                         daemon=True),
    ]
    rows: list[store.FrameRow] = []
    try:
        with atomic_path(request.output) as tmp:
            with VideoWriter(tmp, width=info.width, height=info.height, fps=info.fps, time_base=info.time_base,
                             crf=request.crf, preset=request.preset, audio_from=request.input) as writer:
                for t in threads:
                    t.start()
                for item in _drain(composed, ctx):
                    t0 = time.perf_counter()
                    writer.write(item.output, item.frame.pts if info.time_base is not None else None)
                    ctx.stages.add("encode", time.perf_counter() - t0)
                    _count(report, item, ctx.frame_settings.at(item.frame.index))
                    rows.append(store.FrameRow(item.frame.index, item.status, item.occlusion, item.shot_cut))
                    if len(rows) >= DB_FLUSH_EVERY:
                        store.record_frames(ws, render_id, rows)
                        rows.clear()
                    progress(report.frames, info.frame_count)
                if ctx.errors:
                    raise ctx.errors[0]
                if report.frames != info.frame_count:
                    raise InputError(f"decoded {report.frames} frames, expected {info.frame_count}",
                                     path=request.input)
                t0 = time.perf_counter()
            ctx.stages.add("encode", time.perf_counter() - t0)
            t0 = time.perf_counter()
            sidecar = ctx.provenance.credentials(tmp, request.output, model_name=ctx.model.name,
                                                 model_id=ctx.model.id, frames=report.frames, swapped=report.swapped)
            ctx.stages.add("credentials", time.perf_counter() - t0)
        report.provenance = {"watermark_payload": ctx.provenance.payload,
                             "credentials_sidecar": str(place_sidecar(sidecar, request.output)),
                             "consent_hash": ctx.provenance.consent_hash}
    finally:
        ctx.stop.set()
        for t in threads:
            t.join(timeout=10)
        if rows:
            store.record_frames(ws, render_id, rows)
    report.flicker_ratio = flicker.ratio
    report.inference_run = ctx.cache.misses


def _drain(pipe: _Pipe, ctx: _Context) -> Iterator[_Item]:
    while True:
        item = pipe.get()
        if item is _END or ctx.errors:
            if ctx.errors:
                raise ctx.errors[0]
            return
        yield item


def _count(report: MergeReport, item: _Item, s: MergeSettings) -> None:
    report.frames += 1
    if item.status == "swapped":
        report.swapped += 1
        if item.occlusion is not None and item.occlusion > s.occlusion_threshold:
            report.occluded_frames.append(item.frame.index)
    elif item.status == "kept":
        report.kept += 1
    else:
        report.passthrough += 1
    if item.shot_cut:
        report.shot_cuts.append(item.frame.index)

