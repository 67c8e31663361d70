"""The merge pipeline: decode -> align -> batched inference -> mask/colour/blend -> watermark -> encode.

Stages run in their own threads joined by small bounded queues, so decoding, inference,
compositing and encoding overlap (PyAV, OpenCV, NumPy and PyTorch release the GIL in their
heavy loops). Frames stay in order from end to end. :func:`run` is the stage as a whole: it takes
a prepared :class:`~doppel.merge.stages.RunContext` (model, destination faces, settings, cache,
provenance) and hands each finished frame's row to ``on_frames``; it never opens the workspace.
Resolving the model, the render record and the destination faces is
:func:`doppel.workflow.merge.merge`'s job.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from doppel.core.errors import InputError
from doppel.core.progress import ProgressFn, no_progress
from doppel.io.formats import OutputSpec
from doppel.io.video import VideoInfo
from doppel.merge.outputs import Encode, LayersVideoSink, SequenceSink, VideoSink
from doppel.merge.provenance import place_sidecar
from doppel.merge.settings import MergeSettings
from doppel.merge.stages import (
    END,
    Pipe,
    RunContext,
    WorkItem,
    composite_stage,
    decode_stage,
    guard,
    infer_stage,
    layers_folder,
)
from doppel.merge.temporal import FlickerMeter
from doppel.store.records import FrameRow

log = logging.getLogger(__name__)

ROWS_EVERY = 64  # frame rows handed to on_frames at a time


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
def check_output(spec: OutputSpec, input_path: Path) -> None:
    """Refuse, before any work, an output that cannot be written or would overwrite the input. An image
    sequence's folder is made if its parent exists."""
    output = spec.path
    if output.resolve() == input_path.resolve():
        raise InputError("output would overwrite the input; choose another name", path=output)
    parent = output.parent if str(output.parent) else Path(".")
    if spec.is_sequence and not parent.exists() and parent.parent.is_dir():
        parent = parent.parent
    if output.is_dir():
        raise InputError("is a folder; give an output file name", path=output)
    if not parent.is_dir():
        raise InputError(f"cannot write here: folder {parent} does not exist", path=output)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"cannot write here: folder {parent} is not writable", path=output)


def run(ctx: RunContext, info: VideoInfo, encode: Encode, report: MergeReport, *,
        on_frames: Callable[[list[FrameRow]], None] = lambda rows: None,
        progress: ProgressFn = no_progress) -> None:
    """Merge every frame of ``encode.input`` with ``ctx`` and write ``encode.output`` (atomically, with
    content credentials), filling ``report``. ``on_frames`` receives each finished frame's row, in
    order, a few dozen at a time (the last ones even when the run fails or is interrupted)."""
    try:
        _run(ctx, info, encode, report, on_frames, progress)
    finally:
        ctx.stop.set()
    report.stages = {k: round(v, 3) for k, v in sorted(ctx.stages.seconds.items())}
    report.inference_reused = sum(p.cache.hits for p in ctx.people())


def _run(ctx: RunContext, info: VideoInfo, encode: Encode, report: MergeReport,
         on_frames: Callable[[list[FrameRow]], None], progress: ProgressFn) -> None:
    decoded, inferred, composed = Pipe(ctx.stop), Pipe(ctx.stop), Pipe(ctx.stop)
    flicker = FlickerMeter()
    threads = [
        threading.Thread(target=guard(ctx, decode_stage, encode.input, decoded), name="merge-decode", daemon=True),
        threading.Thread(target=guard(ctx, infer_stage, decoded, inferred), name="merge-infer", daemon=True),
        threading.Thread(target=guard(ctx, composite_stage, inferred, composed, flicker), name="merge-composite",
                         daemon=True),
    ]
    rows: list[FrameRow] = []
    name, model_id = ctx.model.name, ctx.model.id
    try:
        with ExitStack() as stack:
            sink: VideoSink | SequenceSink = (SequenceSink(encode, info) if encode.output.is_sequence
                                              else VideoSink(encode, info, stack))
            layers = LayersVideoSink(ctx.layers, info, stack) if ctx.layers is not None and ctx.layers_video else None
            for t in threads:
                t.start()
            for item in _drain(composed, ctx):
                t0 = time.perf_counter()
                sink.write(item)
                if layers is not None:
                    layers.write(item)
                ctx.stages.add("encode", time.perf_counter() - t0)
                _count(report, item, ctx.frame_settings.at(item.frame.index))
                rows.append(FrameRow(item.frame.index, item.status, item.occlusion, item.shot_cut))
                if len(rows) >= ROWS_EVERY:
                    on_frames(rows)
                    rows = []
                progress(report.frames, info.frame_count)
            if ctx.errors:
                raise ctx.errors[0]
            if report.frames != info.frame_count:
                raise InputError(f"decoded {report.frames} frames, expected {info.frame_count}", path=encode.input)
            t0 = time.perf_counter()
            signed = sink.finish(ctx.provenance, model_name=name, model_id=model_id, frames=report.frames,
                                 swapped=report.swapped)
            layered = {} if layers is None else layers.finish(ctx.provenance, model_name=name, model_id=model_id,
                                                              frames=report.frames, swapped=report.swapped)
            ctx.stages.add("credentials", time.perf_counter() - t0)
        if isinstance(sink, VideoSink):  # renamed into place by now
            signed = sink.place(signed, ctx.provenance, model_name=name, model_id=model_id)
        if layers is not None:
            signed["layers_sidecar"] = str(place_sidecar(Path(layered["layers_sidecar"]), layers.final))
        report.provenance = {"watermark_payload": ctx.provenance.payload, **signed,
                             "consent_hash": ctx.provenance.consent_hash}
        if ctx.layers is not None and not ctx.layers_video:
            t0 = time.perf_counter()
            manifests = seal_layers(ctx)
            if manifests:
                report.provenance["layers_manifest"] = str(manifests[0])
            if len(manifests) > 1:
                report.provenance["layers_manifests"] = [str(m) for m in manifests]
            ctx.stages.add("credentials", time.perf_counter() - t0)
    finally:
        ctx.stop.set()
        for t in threads:
            t.join(timeout=10)
        if rows:
            on_frames(rows)
    report.flicker_ratio = flicker.ratio
    report.inference_run = sum(p.cache.misses for p in ctx.people())


def seal_layers(ctx: RunContext) -> list[Path]:
    """Content credentials into every face layer (in parallel: signing is the slow part), then a signed
    manifest over each layers folder (one per person in a multi-person render). Returns the manifests."""
    assert ctx.layers is not None
    out = []
    for k, person in enumerate(ctx.people()):
        folder = layers_folder(ctx, k)
        name, model_id = person.model.name, person.model.id
        files = [p for p in ctx.layer_files if p.parent == folder]
        if not files and ctx.others:
            continue  # this person was never on screen
        faces = [p for p in files if p.name.startswith("face_")]
        with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
            list(pool.map(lambda p, name=name, model_id=model_id: ctx.provenance.sign_image(
                p, model_name=name, model_id=model_id, what="swapped face layer"), faces))
        out.append(ctx.provenance.seal(folder, files, model_name=name, model_id=model_id))
    return out


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

