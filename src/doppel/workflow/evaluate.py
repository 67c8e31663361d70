"""Evaluating a merge in a workspace: what to compare for a render, the references eval needs
(identity embeddings, the destination's known boxes, a source face for the contact sheet), and a
model's self-swap (its held-out source frames re-rendered and compared with the truth)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from doppel.core.errors import ConfigError, InputError, WorkspaceError
from doppel.core.progress import ProgressFn, no_progress
from doppel.core.swap import Swapper
from doppel.eval.pipeline import EvalRequest, References
from doppel.eval.pipeline import evaluate as run_eval
from doppel.eval.report import EvalReport
from doppel.eval.selfswap import SelfSwapReport, compare
from doppel.extract.config import content_hash
from doppel.io.image import read_image
from doppel.io.video import probe
from doppel.merge.settings import MergeSettings, validate_settings
from doppel.store import Workspace
from doppel.store.records import FaceRecord, ModelRecord
from doppel.workflow.models import find_model
from doppel.workflow.renders import find_render


def request_for_render(ws: Workspace, render: str, *, src: str | None = None, dst: str | None = None,
                       embed_every: int | None = None) -> EvalRequest:
    """An :class:`EvalRequest` for render ``render`` (see :func:`~doppel.workflow.renders.find_render`): the
    clip it was made from, its output, the model's source and destination (unless given), its swapped
    frames and settings."""
    r = find_render(ws, render)
    if r.status != "done":
        raise WorkspaceError(f"render {r.uid} is {r.status}, not done; finish the merge first", path=ws.root)
    clip = ws.clips.get(r.clip_id)
    model = ws.models.by_id(r.model_id) if r.model_id is not None else None
    src = src or (model.src_identity if model is not None else None)
    dst = dst or (model.dst_identity if model is not None else None)
    if src is None:
        raise WorkspaceError(f"render {r.uid}: its model is gone, so its source is unknown; pass --src",
                             path=ws.root)
    original, output = clip.path, Path(r.output_path)
    for path in (original, output):
        if not path.exists():
            raise InputError(f"render {r.uid} needs this file, which is missing", path=path)
    swapped = frozenset(f.frame_index for f in ws.renders.frames(r.id) if f.status == "swapped")
    return EvalRequest(original=original, merged=output, src=src, dst=dst, render=r.uid, swapped=swapped,
                       settings=validate_settings(r.settings), embed_every=embed_every,
                       model=model.name if model is not None else None)


def build_request(ws: Workspace, *, render: str | None = None, original: Path | None = None,
                  merged: Path | None = None, src: str | None = None, dst: str | None = None,
                  embed_every: int | None = None, sheet: Path | None = None, fps: str | None = None) -> EvalRequest:
    """What ``doppel eval`` compares: a render of the workspace, or an original and a merged clip; the
    contact sheet goes to ``sheet`` (default: ``MERGED.eval.png``)."""
    if render is not None:
        if original is not None or merged is not None:
            raise ConfigError("give either --render or --original and --merged, not both")
        request = request_for_render(ws, render, src=src, dst=dst, embed_every=embed_every)
    else:
        if original is None or merged is None or src is None:
            raise ConfigError("give --render RENDER, or --original VIDEO --merged VIDEO --src IDENTITY")
        probe(original, fps=fps), probe(merged, fps=fps)
        request = EvalRequest(original=original, merged=merged, src=src, dst=dst, embed_every=embed_every)
    return dataclasses.replace(request, sheet=sheet or default_report(request.merged, ".eval.png"), fps=fps)


def default_report(merged: Path, suffix: str) -> Path:
    """``MERGED`` without its extension, plus ``suffix`` (where eval's outputs go by default)."""
    return Path(f"{merged.with_suffix('')}{suffix}")


def identity_embeddings(ws: Workspace) -> dict[str, np.ndarray]:
    """Each identity's stored face embeddings ``(K, D)`` (identities without any are left out)."""
    out: dict[str, np.ndarray] = {}
    for name in ws.identities.names():
        embs = [f.embedding for f in ws.faces.of(name) if f.embedding is not None]
        if embs:
            out[name] = np.stack(embs)
    return out


def _known_boxes(ws: Workspace, request: EvalRequest) -> dict[int, np.ndarray] | None:
    """Boxes of the destination's extracted faces in the original clip, when the workspace has them."""
    if request.dst is None:
        return None
    clip = ws.clips.by_hash(content_hash(request.original))
    if clip is None:
        return None
    return {f.frame_index: f.bbox for f in ws.faces.of(request.dst, clip_id=clip.id, include_excluded=True)}


def _source_face(ws: Workspace, identity: str) -> np.ndarray | None:
    """One aligned face of ``identity`` (the sharpest of its most frontal fifth), for the sheet; None
    when none can be read."""
    frontal = sorted(ws.faces.of(identity), key=lambda f: abs(f.yaw) + abs(f.pitch))
    found = sorted(frontal[:max(1, len(frontal) // 5)], key=lambda f: -f.blur)
    for f in found[:3]:
        try:
            return read_image(f.aligned_path)
        except InputError:
            continue
    return None


def references(ws: Workspace, request: EvalRequest) -> References:
    """What :func:`doppel.eval.pipeline.evaluate` compares ``request`` with, from the workspace."""
    for name in (request.src, request.dst):
        if name is not None:
            ws.identities.require(name)
    source = _source_face(ws, request.src) if request.sheet is not None else None
    return References(identity_embeddings(ws), _known_boxes(ws, request), source)


def evaluate(ws: Workspace, request: EvalRequest, *, progress: ProgressFn = no_progress) -> EvalReport:
    """Measure ``request.merged`` against ``request.original`` with the workspace's references."""
    return run_eval(request, references(ws, request), progress=progress)


def held_out_faces(ws: Workspace, model: ModelRecord) -> list[FaceRecord]:
    """The source faces ``model`` never trained on, as its ``train.json`` records them (``--holdout``).

    Raises ``WorkspaceError`` when it recorded none, or when they are no longer in the workspace
    (the source was extracted again since)."""
    from doppel.train import checkpoint  # torch loads only when a model is involved

    if model.src_identity is None:
        raise WorkspaceError(f"model {model.name!r} is a base model; a self-swap needs a pair model", path=model.path)
    try:
        meta = json.loads((model.path / checkpoint.TRAIN).read_text())
    except (OSError, ValueError):
        meta = {}
    ids = {int(i) for i in (meta.get("holdout") or {}).get("src_faces", [])}
    if not ids:
        raise WorkspaceError(f"model {model.name!r} recorded no held-out source frames; train it with --holdout "
                             "(e.g. 0.1) to measure a self-swap", path=model.path)
    faces = [f for f in ws.faces.of(model.src_identity, include_excluded=True) if f.id in ids]
    if not faces:
        raise WorkspaceError(f"the source faces model {model.name!r} held out are gone ({model.src_identity!r} was "
                             "extracted again since); train it again to measure a self-swap", path=model.path)
    return faces


def self_swap(ws: Workspace, model_name: str, output: Path, *, sheet: Path | None = None,
              settings: MergeSettings | None = None, faces: list[FaceRecord] | None = None,
              swapper: Swapper | None = None, progress: ProgressFn = no_progress) -> SelfSwapReport:
    """Re-render the held-out source frames of ``model_name`` (:func:`held_out_faces`, or ``faces``: source
    faces kept out of its training some other way) and compare them with the truth
    (:func:`doppel.eval.selfswap.compare`). ``swapper`` stands in for the model's network (benchmarks).

    The source's clip with the most held-out frames is merged into ``output`` with the model, its source
    as the destination person and ``settings`` (default: the defaults); every other frame keeps its
    original face (the merge writes them but runs no model there). The render is an ordinary one:
    recorded, watermarked, signed."""
    from doppel.workflow.merge import MergeRequest, merge

    model = find_model(ws, model_name)
    if faces is None:
        faces = held_out_faces(ws, model)
    if not faces:
        raise WorkspaceError(f"no held-out faces to re-render for model {model.name!r}", path=model.path)
    by_clip: dict[int, list[FaceRecord]] = {}
    for f in faces:
        by_clip.setdefault(f.clip_id, []).append(f)
    clip_id = max(by_clip, key=lambda c: (len(by_clip[c]), -c))
    clip = ws.clips.get(clip_id)
    held = {f.frame_index: f.landmarks_smooth for f in by_clip[clip_id]}
    keep = [(a, b, {"keep_original": True}) for a, b in _gaps(sorted(held), clip.frame_count)]
    done = merge(ws, MergeRequest(input=ws.clips.path_of(clip_id), output=output, model=model.name,
                                  identity=model.src_identity, settings=settings or MergeSettings(),
                                  overrides=tuple(keep)),
                 swapper=swapper, progress=_half(progress, 0, clip.frame_count))
    return compare(ws.clips.path_of(clip_id), output, held, model=model.name, render=done.render_uid, sheet=sheet,
                   progress=_half(progress, 1, clip.frame_count))


def _half(progress: ProgressFn, which: int, frames: int) -> ProgressFn:
    """Progress of one of two passes over ``frames`` frames, as a share of both."""
    def report(done: int, _total: int | None, /) -> None:
        progress(which * frames + min(done, frames), 2 * frames)

    return report


def _gaps(frames: list[int], count: int) -> list[tuple[int, int]]:
    """Inclusive ``(first, last)`` ranges of ``0 .. count - 1`` not in the sorted ``frames``."""
    out, start = [], 0
    for i in frames:
        if i > start:
            out.append((start, i - 1))
        start = max(start, i + 1)
    if start < count:
        out.append((start, count - 1))
    return out
