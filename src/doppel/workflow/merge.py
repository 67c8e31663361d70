"""A merge in a workspace: resolve the model and its consent, make sure the destination's faces exist,
find or start the render record, run the merge stage, record its frames and its end.

:func:`merge` reads top to bottom in numbered steps; the work itself is :func:`doppel.merge.pipeline.run`.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from doppel import __version__
from doppel.core.errors import ConfigError, InputError, NoFaceError, RefusedError
from doppel.core.names import check_path_name
from doppel.core.progress import ProgressFn, no_progress
from doppel.core.swap import Swapper, output_resolution
from doppel.io.atomic import write_text_atomic
from doppel.io.formats import check_size, output_spec
from doppel.io.video import probe
from doppel.merge.cache import InferenceCache, cache_dir, model_fingerprint
from doppel.merge.pipeline import Encode, MergeReport, check_output, run
from doppel.merge.provenance import Provenance
from doppel.merge.settings import (
    FrameSettings,
    MergeSettings,
    frame_settings_of,
    validate_partial,
    validate_settings,
)
from doppel.merge.stages import Destination, Person, RunContext, StageTimer
from doppel.provenance.consent import require_consent
from doppel.provenance.keys import cache_key
from doppel.provenance.watermark import render_payload
from doppel.store import Workspace
from doppel.store.records import ConsentRecord, ModelRecord, RenderRecord
from doppel.workflow.extract import destination_faces
from doppel.workflow.models import find_model, load_model, model_of, others_of
from doppel.workflow.segment import segmenter_for

if TYPE_CHECKING:
    from doppel.segment.segmenter import Segmenter

SETTINGS_FILE = "merge.json"  # a render's resolved settings, in its folder under WS/renders/<uid>/


@dataclass(frozen=True)
class MergeRequest:
    """What to merge. ``overrides`` are ``(first, last, partial settings)``; ``identity`` is the
    destination person (default: the model's destination identity). ``others``: more models, each
    swapping its own destination person in the same pass (composited after ``model``'s, in order)."""

    input: Path
    output: Path
    model: str
    others: tuple[str, ...] = ()
    settings: MergeSettings = field(default_factory=MergeSettings)
    overrides: tuple[tuple[int, int, dict[str, Any]], ...] = ()
    identity: str | None = None
    layers: Path | None = None
    crf: int = 18
    preset: str = "veryfast"
    batch: int = 8
    codec: str | None = None           # default: from the output's extension (see doppel.io.formats)
    fps: str | None = None             # an image-sequence input's frame rate (24000/1001, 23.976, 25, ...)
    start_number: int | None = None    # an image-sequence output's first frame number (default: the input's)


def render_key(settings: MergeSettings, overrides: Sequence[tuple[int, int, dict[str, Any]]],
               others: Sequence[str] = ()) -> str:
    """The ``settings_hash`` of a render: its base settings, the overrides it was started with and the
    models of the people it swaps after the first."""
    data: dict[str, Any] = {"settings": settings.model_dump(), "overrides": [list(o) for o in overrides]}
    if others:
        data["others"] = list(others)
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def frame_settings(ws: Workspace, render: RenderRecord) -> FrameSettings:
    """Per-frame settings of a render: its base settings with its overrides as they are now."""
    return frame_settings_of(render, ws.renders.overrides(render.id))


def add_override(ws: Workspace, render_id: int, first: int, last: int, changes: dict[str, Any]) -> int:
    """Store a validated partial settings change for frames ``first..last`` (inclusive); returns its id."""
    if first < 0 or last < first:
        raise ConfigError(f"override frame range {first}..{last}: expected 0 <= first <= last")
    ws.renders.get(render_id)
    return ws.renders.add_override(render_id, first, last, validate_partial(changes))


def provenance_for(ws: Workspace, model: ModelRecord) -> Provenance:
    """Check consent for the model's source identity (refuses without it) and start provenance."""
    if model.src_identity is None:
        raise RefusedError("refused: the model records no source identity, so its consent cannot be checked; "
                           "retrain it from a face set of a consenting identity")
    return Provenance(ws.keys_dir(), require_consent(ws, model.src_identity), model.src_identity)


def add_sources(ws: Workspace, prov: Provenance, models: Sequence[ModelRecord]) -> list[ConsentRecord]:
    """The consent of each further model's source identity (refuses without it), listed in the credentials;
    returns the consent records, in order."""
    consents = []
    for model in models:
        if model.src_identity is None:
            raise RefusedError(f"refused: model {model.name!r} records no source identity, so its consent cannot "
                               "be checked; retrain it from a face set of a consenting identity")
        consents.append(require_consent(ws, model.src_identity))
        prov.add_source(consents[-1], model.src_identity)
    return consents


def destinations(ws: Workspace, path: Path, model: ModelRecord, identity: str, more: Sequence[ModelRecord], *,
                 progress: ProgressFn = no_progress) -> list[tuple[ModelRecord, Destination]]:
    """Each person's faces in the clip at ``path`` (extracted now if the clip is new to them): ``model`` replacing
    ``identity``, then each of ``more`` its own destination identity; checked apart (:func:`check_people`)."""
    people: list[tuple[ModelRecord, Destination]] = []
    for m, ident in [(model, identity), *((m, m.dst_identity) for m in more)]:
        if ident is None:
            raise InputError(f"model {m.name!r} has no destination identity", path=m.path)
        d = destination_faces(ws, path, ident, size=max(256, m.resolution), face_type=m.face_type, progress=progress)
        if not d.faces:
            raise NoFaceError(f"no face of {ident!r} in this video; nothing to merge", path=path)
        people.append((m, d))
    check_people(people, path)
    return people


def check_people(people: Sequence[tuple[ModelRecord, Destination]], path: Path) -> None:
    """Several people in one render: each model swaps a different destination person, and no face in the clip
    was taken for two of them."""
    for i, (m, d) in enumerate(people):
        for n, e in people[:i]:
            if d.identity == e.identity:
                raise ConfigError(f"models {n.name!r} and {m.name!r} both replace {d.identity!r}; give each "
                                  "destination person one model")
            for index in sorted(set(d.faces) & set(e.faces)):
                a, b = np.asarray(d.faces[index].bbox, float), np.asarray(e.faces[index].bbox, float)
                w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
                h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
                small = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
                if small > 0 and w * h / small > 0.5:
                    raise InputError(f"{d.identity!r} and {e.identity!r} are the same face in frame {index}: extract "
                                     "each person with `doppel extract --person PHOTO` before merging", path=path)


def wants_segmenter(settings: FrameSettings) -> bool:
    """Whether any frame is set to ``occlusion=segment`` (the default or an override)."""
    return settings.base.occlusion == "segment" or any(o.changes.get("occlusion") == "segment"
                                                       for o in settings.overrides)


def segmenter_if_needed(ws: Workspace, settings: FrameSettings) -> Segmenter | None:
    """The workspace's segmenter (else the base one) when any frame is set to ``occlusion=segment``."""
    return segmenter_for(ws) if wants_segmenter(settings) else None


def _cache(ws: Workspace, model: ModelRecord, dest: Destination, swapper: Swapper) -> InferenceCache:
    folder = cache_dir(ws.renders_dir(), model_fingerprint(model), dest.clip_hash, output_resolution(swapper),
                       swapper.face_type)
    return InferenceCache(folder, cache_key(ws.keys_dir()))


def run_context(ws: Workspace, render: RenderRecord, model: ModelRecord, dest: Destination, swapper: Swapper,
                provenance: Provenance, *, layers: Path | None = None, batch: int = 8,
                segmenter: Segmenter | None = None,
                others: Sequence[tuple[ModelRecord, Destination, Swapper]] = ()) -> RunContext:
    """Everything the merge stages share for one run of ``render`` (``segmenter``: for frames set to
    ``occlusion=segment``; see :func:`segmenter_if_needed`; ``others``: more people swapped in the same pass)."""
    provenance.set_render(render.uid, render.watermark_payload)
    people = [Person(net, m, d, _cache(ws, m, d, net)) for m, d, net in others]
    return RunContext(swapper=swapper, model=model, dest=dest, frame_settings=frame_settings(ws, render),
                      cache=_cache(ws, model, dest, swapper), provenance=provenance, layers=layers,
                      batch=max(1, batch), stages=StageTimer(), stop=threading.Event(), segmenter=segmenter,
                      others=people)


def render_for(ws: Workspace, request: MergeRequest, model: ModelRecord, dest: Destination, consent_hash: str,
               render_id: int | None, others: Sequence[tuple[ModelRecord, str]] = ()) -> tuple[RenderRecord, bool]:
    """The render to (re)run: ``render_id``'s; else the earlier one with the same model, clip, output and
    settings; else a new one (with the given overrides stored). Returns it and whether it is resumed."""
    if render_id is not None:
        render = ws.renders.get(render_id)
        if render.clip_id != dest.clip_id or render.model_id != model.id:
            raise ConfigError(f"render {render.uid} was made from another clip or model; start a new merge instead")
        return ws.renders.restart(render_id, consent_hash), True
    key = render_key(request.settings, request.overrides, [m.name for m, _ in others])
    out = str(Path(request.output).resolve())
    found = ws.renders.latest_like(model_id=model.id, clip_id=dest.clip_id, output_path=out, settings_hash=key)
    if found is not None:
        return ws.renders.restart(found.id, consent_hash), True
    uid = secrets.token_hex(8)
    return ws.renders.create(uid=uid, model_id=model.id, clip_id=dest.clip_id, output_path=out,
                             settings=request.settings.model_dump(mode="json"), settings_hash=key,
                             watermark_payload=render_payload(uid), consent_hash=consent_hash,
                             overrides=request.overrides, others=[(m.id, ident) for m, ident in others]), False


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
    check_path_name(request.input)
    check_path_name(request.output)
    spec = output_spec(request.output, request.codec)
    check_output(spec, request.input)
    info = probe(request.input, fps=request.fps)
    if spec.codec is not None:
        check_size(spec.codec, info.width, info.height)
    deep = spec.bits > 8 and info.bits > 8
    if request.others and request.identity:  # each model names its own destination person
        raise ConfigError("--identity works with one --model only (several models: each swaps its model's own "
                          "destination person)")
    # 2. the models' records, their identities and the consent for each source identity
    model = find_model(ws, request.model)
    prov = provenance_for(ws, model)
    more = [find_model(ws, name) for name in request.others]
    if len({m.id for m in [model, *more]}) < 1 + len(more):
        raise ConfigError("the same --model is given twice")
    add_sources(ws, prov, more)
    # 3. each destination person's faces in this clip (extracted now if the clip is new to them)
    identity = request.identity or model.dst_identity
    if identity is None:
        raise InputError(f"model {model.name!r} has no destination identity; pass --identity", path=model.path)
    people = destinations(ws, request.input, model, identity, more, progress=progress)
    dest = people[0][1]
    # 4. the networks (the slow part of starting up, so it comes after every cheap check)
    net = swapper if swapper is not None else load_model(model)
    others = [(m, d, load_model(m)) for m, d in people[1:]]
    # 5. the render record (resumed when one with the same models, clip, output and settings exists)
    render, resumed = render_for(ws, request, model, dest, prov.consent_hash, render_id,
                                 [(m, d.identity) for m, d in people[1:]])
    report = MergeReport(render.id, render.uid, str(request.output), resumed, settings_hash=render.settings_hash,
                         settings=render.settings)
    segmenter = segmenter_if_needed(ws, frame_settings(ws, render))
    ctx = run_context(ws, render, model, dest, net, prov, layers=request.layers, batch=request.batch,
                      segmenter=segmenter, others=others)
    ctx.deep, ctx.fps = deep, info.rate if info.kind == "images" else None
    start = request.start_number if request.start_number is not None else info.start_number
    status = "failed"
    try:
        # 6. run the stage, recording each frame's row as it is written; then the settings beside the output
        run(ctx, info, Encode(request.input, spec, request.crf, request.preset, start), report,
            on_frames=lambda rows: ws.renders.record_frames(render.id, rows), progress=progress)
        status = "done"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        ws.renders.finish(render.id, status)
    write_settings(ws, request, render, model)
    report.seconds = time.perf_counter() - started
    report.fps = report.frames / report.seconds if report.seconds else 0.0
    return report


def write_settings(ws: Workspace, request: MergeRequest, render: RenderRecord, model: ModelRecord) -> None:
    data = {"doppel_version": __version__, "render": render.uid, "model": model.name, "model_step": model.step,
            "others": list(request.others),
            "input": str(request.input), "output": str(request.output), "settings": render.settings,
            "overrides": [list(o) for o in request.overrides], "crf": request.crf, "preset": request.preset,
            "codec": request.codec, "fps": request.fps, "start_number": request.start_number}
    text = json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"
    write_text_atomic(ws.renders_dir() / render.uid / SETTINGS_FILE, text)


def rerender(ws: Workspace, render_id: int, *, progress: ProgressFn = no_progress,
             swapper: Swapper | None = None, layers: Path | None = None) -> MergeReport:
    """Re-encode a whole render with its current overrides (same uid, watermark and output path)."""
    render = ws.renders.get(render_id)
    model = model_of(ws, render)
    saved = ws.renders_dir() / render.uid / SETTINGS_FILE  # the encode settings it was made with
    encode = json.loads(saved.read_text()) if saved.is_file() else {}
    request = MergeRequest(input=ws.clips.path_of(render.clip_id, what=f"render {render.uid}"),
                           output=Path(render.output_path), model=model.name,
                           others=tuple(m.name for m, _ in others_of(ws, render)),
                           settings=validate_settings(render.settings), layers=layers,
                           crf=int(encode.get("crf", 18)), preset=str(encode.get("preset", "veryfast")),
                           codec=encode.get("codec"), fps=encode.get("fps"), start_number=encode.get("start_number"))
    if swapper is None:
        swapper = load_model(model)
    return merge(ws, request, progress=progress, swapper=swapper, render_id=render.id)
