"""The driver's side of one shot: what it reads from the workspace before dispatch (:func:`prepare`), how
it knows a shot is finished (:func:`finished`), and what it does once every chunk is back
(:func:`finalize`: join by stream copy, sign the credentials, record the render). Only the driver runs
this; workers get a :class:`~doppel.batch.worker.ShotData` and nothing else.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from doppel import __version__
from doppel.batch.jobfile import Shot
from doppel.batch.plan import plan_shot
from doppel.batch.worker import ChunkResult, ChunkTask, OtherPerson, ShotData
from doppel.core.errors import InputError, RefusedError
from doppel.core.names import check_path_name
from doppel.core.progress import ProgressFn, no_progress
from doppel.extract.config import content_hash
from doppel.io.atomic import atomic_path
from doppel.io.formats import output_spec
from doppel.io.remux import join_video
from doppel.io.video import VideoInfo, probe
from doppel.merge.cache import cache_dir, model_fingerprint
from doppel.merge.pipeline import check_output
from doppel.merge.provenance import Provenance, place_sidecar
from doppel.merge.stages import Destination
from doppel.merge.temporal import FlickerMeter
from doppel.provenance.consent import require_consent
from doppel.provenance.keys import cache_key
from doppel.store import Workspace
from doppel.store.records import ModelRecord, RenderRecord
from doppel.workflow.evaluate import default_report
from doppel.workflow.merge import (
    MergeRequest,
    add_sources,
    destinations,
    frame_settings,
    render_for,
    render_key,
    wants_segmenter,
    write_settings,
)
from doppel.workflow.models import find_model
from doppel.workflow.segment import segmenter_weights

CHUNKS_DIR = "chunks"  # in WS/renders/<uid>/: chunk files and their done-markers, removed once joined


def request_of(shot: Shot, identity: str | None = None) -> MergeRequest:
    return MergeRequest(input=shot.input, output=shot.output, model=shot.model, others=shot.others,
                        settings=shot.settings,
                        overrides=shot.overrides, identity=identity or shot.identity, crf=shot.crf,
                        preset=shot.preset, batch=shot.batch)


def eval_report_path(shot: Shot) -> Path:
    return default_report(shot.output, ".eval.json")


def check(shot: Shot) -> VideoInfo:
    """Cheap checks before any work: names, output writable and not the input, input readable."""
    check_path_name(shot.input)
    check_path_name(shot.output)
    check_output(output_spec(shot.output), shot.input)
    return probe(shot.input)


def render_of(ws: Workspace, shot: Shot) -> RenderRecord | None:
    """The render a run of ``shot`` resumes (as ``doppel merge`` finds it: model, clip, output, settings)."""
    model = ws.models.get(shot.model)
    clip = ws.clips.by_hash(content_hash(shot.input)) if shot.input.exists() else None
    if model is None or clip is None:
        return None
    return ws.renders.latest_like(model_id=model.id, clip_id=clip.id, output_path=str(shot.output.resolve()),
                                  settings_hash=render_key(shot.settings, shot.overrides, shot.others))


def finished(ws: Workspace, shot: Shot) -> tuple[RenderRecord | None, bool, bool]:
    """``(render, merged, evaluated)``: the shot's render, whether it is done with its output present,
    and whether its evaluation (when the job asks for one) is written too."""
    render = render_of(ws, shot)
    merged = render is not None and render.status == "done" and shot.output.is_file()
    evaluated = merged and (not shot.eval or eval_report_path(shot).is_file())
    return render, merged, evaluated


@dataclass
class Prepared:
    """A shot ready to dispatch: what workers get, and what the driver keeps to finish it."""

    shot: Shot
    data: ShotData
    request: MergeRequest
    model: ModelRecord
    render: RenderRecord
    provenance: Provenance
    tasks: list[ChunkTask]
    resumed: bool


def _faces_digest(dest: Destination) -> str:
    h = hashlib.sha256()
    for index in sorted(dest.faces):
        face = dest.faces[index]
        h.update(index.to_bytes(8, "little"))
        h.update(np.ascontiguousarray(face.transform, np.float64).tobytes())
        h.update(np.ascontiguousarray(face.landmarks_smooth, np.float32).tobytes())
    return h.hexdigest()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def shot_key(ws: Workspace, data: ShotData, render: RenderRecord) -> str:
    """What a chunk's result depends on besides its frame range (a done-marker from a run with another key
    is ignored)."""
    overrides = [[o.first, o.last, o.changes] for o in ws.renders.overrides(render.id)]
    parts = {"render": render.uid, "payload": data.payload, "settings": render.settings, "overrides": overrides,
             "model": model_fingerprint(data.model), "segmenter": data.segmenter_sha256,
             "clip": data.dest.clip_hash, "faces": _faces_digest(data.dest),
             "crf": data.crf, "preset": data.preset, "version": __version__}
    if data.others:
        parts["others"] = [[model_fingerprint(o.model), _faces_digest(o.dest)] for o in data.others]
    return _digest(json.dumps(parts, sort_keys=True, default=str))


def _cache_folder(ws: Workspace, model: ModelRecord, dest: Destination) -> Path:
    return cache_dir(ws.renders_dir(), model_fingerprint(model), dest.clip_hash, model.resolution, model.face_type)


def prepare(ws: Workspace, shot: Shot, info: VideoInfo, chunk_frames: int, *,
            progress: ProgressFn = no_progress) -> Prepared:
    """Read everything the shot's workers need: model, consent, the destination's faces (extracted here
    first if the workspace lacks them), the render (resumed as ``doppel merge`` would), its per-frame
    settings; plan its chunks of about ``chunk_frames`` frames."""
    model = find_model(ws, shot.model)
    if model.src_identity is None:
        raise RefusedError("refused: the model records no source identity, so its consent cannot be checked; "
                           "retrain it from a face set of a consenting identity", path=model.path)
    consent = require_consent(ws, model.src_identity)
    prov = Provenance(ws.keys_dir(), consent, model.src_identity)
    more = [find_model(ws, name) for name in shot.others]
    more_consents = add_sources(ws, prov, more)  # refuses a further model without consent for its source
    identity = shot.identity or model.dst_identity
    if identity is None:
        raise InputError(f"model {model.name!r} has no destination identity; give the shot an identity",
                         path=model.path)
    people = destinations(ws, shot.input, model, identity, more, progress=progress)
    dest = people[0][1]
    request = request_of(shot, identity)
    render, resumed = render_for(ws, request, model, dest, prov.consent_hash, None,
                                 [(m, d.identity) for m, d in people[1:]])
    if render.watermark_payload is None:
        raise InputError(f"render {render.uid} has no watermark payload", path=ws.root)
    prov.set_render(render.uid, render.watermark_payload)
    fs = frame_settings(ws, render)
    cache_key(ws.keys_dir())  # made now if the workspace has none yet, so that workers only read it
    seg_folder, seg_sha = segmenter_weights(ws) if wants_segmenter(fs) else (None, "")
    data = ShotData(name=shot.name, input=shot.input, info=info, model=model, dest=dest, frame_settings=fs,
                    segmenter=seg_folder, segmenter_sha256=seg_sha,
                    render_uid=render.uid, payload=render.watermark_payload, consent=consent,
                    source_identity=model.src_identity, keys_dir=ws.keys_dir(),
                    cache_folder=_cache_folder(ws, model, dest),
                    chunk_dir=ws.renders_dir() / render.uid / CHUNKS_DIR,
                    crf=shot.crf, preset=shot.preset, batch=shot.batch,
                    others=tuple(OtherPerson(m, d, _cache_folder(ws, m, d), c)
                                 for (m, d), c in zip(people[1:], more_consents, strict=True)))
    key = shot_key(ws, data, render)
    ranges = plan_shot(info.frame_count, dest.faces, fs, chunk_frames)
    tasks = [ChunkTask(shot.name, i, r, _digest(f"{key}|{r.start}|{r.stop}|{r.warmup}")) for i, r in enumerate(ranges)]
    return Prepared(shot, data, request, model, render, prov, tasks, resumed)


def merge_report(prep: Prepared, results: Sequence[ChunkResult]) -> dict[str, Any]:
    """The shot's merge report from its chunks' (the keys of ``doppel merge --json``)."""
    rows = [r for res in results for r in res.report.rows]
    at = prep.data.frame_settings.at
    flicker = FlickerMeter([c for res in results for c in res.report.input_change],
                           [c for res in results for c in res.report.output_change])
    stages: dict[str, float] = {}
    for res in results:
        for k, v in res.report.stages.items():
            stages[k] = round(stages.get(k, 0.0) + v, 3)
    return {"render_id": prep.render.id, "render_uid": prep.render.uid, "output": str(prep.shot.output),
            "resumed": prep.resumed, "frames": len(rows),
            "swapped": sum(r.status == "swapped" for r in rows), "kept": sum(r.status == "kept" for r in rows),
            "passthrough": sum(r.status == "passthrough" for r in rows),
            "occluded_frames": [r.frame_index for r in rows if r.status == "swapped" and r.occlusion is not None
                                and r.occlusion > at(r.frame_index).occlusion_threshold],
            "shot_cuts": [r.frame_index for r in rows if r.shot_cut], "flicker_ratio": flicker.ratio,
            "inference_reused": sum(res.report.cache_hits for res in results),
            "inference_run": sum(res.report.cache_misses for res in results), "stages": stages,
            "settings_hash": prep.render.settings_hash, "settings": prep.render.settings,
            "chunks": len(results), "workers": sorted({res.worker for res in results if not res.reused})}


def finalize(ws: Workspace, prep: Prepared, results: Sequence[ChunkResult]) -> dict[str, Any]:
    """Join the chunks into the shot's output by stream copy, with the input's audio; sign its content
    credentials; record the render as done and its settings beside it; drop the chunk files. Returns the
    merge report with the seconds spent joining and signing."""
    ordered = sorted(results, key=lambda r: r.index)
    report = merge_report(prep, ordered)
    info = prep.data.info
    t0 = time.perf_counter()
    with atomic_path(prep.shot.output) as tmp:
        frames = join_video([r.path for r in ordered], tmp, audio_from=prep.shot.input)
        if frames != info.frame_count:
            raise InputError(f"joined {frames} frames, expected {info.frame_count}", path=prep.shot.output)
        t1 = time.perf_counter()
        sidecar = prep.provenance.credentials(tmp, prep.shot.output, model_name=prep.model.name,
                                              model_id=prep.model.id, frames=frames, swapped=report["swapped"])
        t2 = time.perf_counter()
    report["provenance"] = {"watermark_payload": prep.provenance.payload,
                            "credentials_sidecar": str(place_sidecar(sidecar, prep.shot.output)),
                            "consent_hash": prep.provenance.consent_hash}
    ws.renders.finish(prep.render.id, "done")
    write_settings(ws, prep.request, prep.render, prep.model)
    shutil.rmtree(prep.data.chunk_dir, ignore_errors=True)
    report["join_seconds"], report["credentials_seconds"] = round(t1 - t0, 3), round(t2 - t1, 3)
    return report
