"""Extraction into a workspace: run the stage, commit its rows in one transaction, tidy replaced crops;
and the destination's faces a merge needs, extracted first when the workspace lacks them."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from doppel.core.errors import InputError, NoFaceError
from doppel.core.names import check_identity_name, check_path_name
from doppel.core.progress import ProgressFn, no_progress
from doppel.extract.config import ClipReport, ExtractConfig, content_hash
from doppel.extract.pipeline import Extraction, discard, extract_clip, reference_embedding
from doppel.io.video import media_exists, probe
from doppel.merge.bridge import bridged
from doppel.merge.stages import Destination
from doppel.provenance.screen import Screen
from doppel.store import Workspace

log = logging.getLogger(__name__)



def check_inputs(paths: Sequence[Path], fps: str | None = None) -> None:
    """Every input exists and is readable media, before anything is extracted (so a bad one changes nothing)."""
    for path in paths:
        check_path_name(path)
        if not media_exists(path):
            raise InputError("no such file", path=path)
        probe(path, fps=fps)


def person_reference(photo: Path | None, config: ExtractConfig) -> np.ndarray | None:
    """The identity vector of ``--person``'s photo, computed once for all the clips."""
    return reference_embedding(photo, config=config) if photo is not None else None


def extract(ws: Workspace, identity: str, path: str | Path, *, config: ExtractConfig | None = None,
            person: str | Path | np.ndarray | None = None, progress: ProgressFn = no_progress,
            screen: Screen | None = None, fps: str | None = None) -> ClipReport:
    """Extract one person's faces from one clip into ``identity``'s face set, replacing any earlier
    extraction of that clip for that identity (see :func:`doppel.extract.pipeline.extract_clip`). On any
    error the workspace is left as it was."""
    check_identity_name(identity)
    check_path_name(path)
    found = extract_clip(identity, path, ws.faceset_dir(identity), ws.root, config=config or ExtractConfig(),
                         person=person, progress=progress, screen=screen, fps=fps)
    try:
        clip_id, replaced = _commit(ws, found)
    except BaseException:
        discard(found.run_dir)
        raise
    _tidy(ws, found, replaced)
    report = found.report
    report.clip_id = clip_id
    return report


def _commit(ws: Workspace, found: Extraction) -> tuple[int, list[str]]:
    report = found.report
    summary = {k: v for k, v in report.to_dict().items() if k not in ("stages", "screen")}
    # The job row is the record of this extraction's resolved settings, beside the rows it wrote.
    params = {"identity": found.identity, "clip": report.clip, **found.config.model_dump()}
    with ws.atomic():
        clip_id = ws.clips.add(found.clip)
        replaced = ws.faces.aligned_paths(found.identity, clip_id)
        ws.faces.replace_clip(found.identity, clip_id, found.tracks, found.faces, found.frames)
        ws.jobs.record("extract", params, {**summary, "clip_id": clip_id}, found.started)
    return clip_id, replaced


def _tidy(ws: Workspace, found: Extraction, replaced: list[str]) -> None:
    """Delete the crops the commit replaced, and the folders of earlier runs on this clip that crashed
    before committing (done only after the commit, so a failure never loses the old set)."""
    keep = {f.aligned_rel for f in found.faces}
    dirs = set()
    for rel in replaced:
        if rel not in keep:
            p = ws.abs(rel)
            p.unlink(missing_ok=True)
            dirs.add(p.parent)
    for d in ws.faceset_dir(found.identity).glob(f"{found.clip.content_hash[:12]}-*"):
        if d != found.run_dir:
            dirs.add(d)
    for d in dirs:
        if d.is_dir() and d != found.run_dir and not any(p for p in d.iterdir() if not p.name.startswith(".")):
            shutil.rmtree(d, ignore_errors=True)


def identity_embedding(ws: Workspace, identity: str) -> np.ndarray | None:
    """Mean identity vector of the person's faces already in the workspace (None when none were embedded)."""
    if ws.identities.id_of(identity) is None:
        return None
    vecs = [f.embedding for f in ws.faces.of(identity) if f.embedding is not None and f.embedding.size == 128]
    return np.mean(vecs, axis=0).astype(np.float32) if vecs else None


def destination_faces(ws: Workspace, path: Path, identity: str, *, size: int = 256, face_type: str = "full",
                      progress: ProgressFn = no_progress) -> Destination:
    """Faces of ``identity`` in the clip at ``path``, by frame index, extracting them first if the
    workspace has not examined this clip for this person (excluded faces included: pruning a face from a
    training set does not mean leaving it unswapped). A new clip's faces are matched to the person's faces
    already in the workspace, so that in a shot with several people each model swaps its own performer
    (with none yet, the longest track is the person). Short gaps (an occluder hiding the face from the
    detector) are bridged (:mod:`doppel.merge.bridge`); merge swaps a bridged face only where the segmenter
    sees enough of a face."""
    digest = content_hash(path)
    clip = ws.clips.by_hash(digest)
    if clip is None or not ws.faces.extracted(clip.id, identity):
        reference = identity_embedding(ws, identity)
        log.info("extracting %s from %s before merging", identity, path)
        config = ExtractConfig.validated({"size": size, "face_type": face_type})
        try:
            extract(ws, identity, path, config=config, person=reference, progress=progress)
        except NoFaceError as exc:
            if reference is None:
                raise
            detail = exc.message.removeprefix(f"{path}: ")
            raise NoFaceError(f"{identity!r} is not in this video ({detail}, matched against their faces in the "
                              f"workspace); if they are, run `doppel extract` on it with --person PHOTO first",
                              path=path) from None
        clip = ws.clips.by_hash(digest)
        if clip is None:
            raise InputError("extraction did not register this clip in the workspace", path=path)
    found = ws.faces.of(identity, clip_id=clip.id, include_excluded=True)
    return Destination(clip.id, digest, identity, bridged({f.frame_index: f for f in found}))
