"""The merge pipeline: decode -> align -> batched inference -> mask/colour/blend -> watermark -> encode.

Stages run in their own threads joined by small bounded queues, so decoding, inference,
compositing and encoding overlap (PyAV, OpenCV, NumPy and PyTorch release the GIL in their
heavy loops). Frames stay in order from end to end. The main thread encodes and writes the
workspace (SQLite connections belong to the thread that opened them).

Read top to bottom: :func:`merge` does the numbered steps; the stages are in :mod:`doppel.merge.stages`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from doppel.core.errors import InputError, NoFaceError
from doppel.core.progress import ProgressFn, no_progress
from doppel.core.swap import Swapper
from doppel.faceset.workspace import Workspace
from doppel.io.atomic import atomic_path
from doppel.io.video import VideoInfo, VideoWriter, probe
from doppel.merge import store
from doppel.merge.cache import InferenceCache, cache_dir
from doppel.merge.model import find_model, load_model
from doppel.merge.provenance import place_sidecar, provenance_for
from doppel.merge.settings import MergeSettings
from doppel.merge.sources import destination_faces
from doppel.merge.stages import (
    END,
    Pipe,
    RunContext,
    StageTimer,
    WorkItem,
    composite_stage,
    decode_stage,
    guard,
    infer_stage,
)
from doppel.merge.temporal import FlickerMeter

log = logging.getLogger(__name__)

OUTPUT_CONTAINERS = (".mp4", ".mov", ".m4v")  # H.264 + audio, and a C2PA manifest can be embedded
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
    ctx = RunContext(
        swapper=net, model=model, dest=dest, frame_settings=store.frame_settings(ws, render.id),
        cache=InferenceCache(cache_dir(ws.renders_dir(), model.fingerprint(), dest.clip_hash, net.resolution,
                                       net.face_type)),
        provenance=prov, layers=request.layers, batch=max(1, request.batch), stages=StageTimer(),
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


def _run(ws: Workspace, ctx: RunContext, info: VideoInfo, request: MergeRequest, render_id: int,
         report: MergeReport, progress: ProgressFn) -> None:
    decoded, inferred, composed = Pipe(ctx.stop), Pipe(ctx.stop), Pipe(ctx.stop)
    flicker = FlickerMeter()
    threads = [
        threading.Thread(target=guard(ctx, decode_stage, request.input, decoded), name="merge-decode", daemon=True),
        threading.Thread(target=guard(ctx, infer_stage, decoded, inferred), name="merge-infer", daemon=True),
        threading.Thread(target=guard(ctx, composite_stage, inferred, composed, flicker), name="merge-composite",
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


def _drain(pipe: Pipe, ctx: RunContext) -> Iterator[WorkItem]:
    while True:
        item = pipe.get()
        if item is END or ctx.errors:
            if ctx.errors:
                raise ctx.errors[0]
            return
        yield item


def _count(report: MergeReport, item: WorkItem, s: MergeSettings) -> None:
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

