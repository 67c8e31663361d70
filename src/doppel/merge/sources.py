"""The destination person's faces in the clip being merged, extracted on the fly if needed."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from doppel.core.errors import InputError
from doppel.core.progress import ProgressFn, no_progress
from doppel.extract.pipeline import content_hash, extract_clip
from doppel.faceset.query import FaceRecord, faces
from doppel.faceset.workspace import Workspace

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Destination:
    clip_id: int
    clip_hash: str
    identity: str
    faces: dict[int, FaceRecord]  # frame index -> face (frames without one pass through)


def _extracted(ws: Workspace, clip_id: int, identity_id: int) -> bool:
    row = ws.conn.execute("SELECT 1 FROM frames WHERE clip_id = ? AND identity_id = ? LIMIT 1",
                          (clip_id, identity_id)).fetchone()
    if row is not None:
        return True
    return ws.conn.execute("SELECT 1 FROM faces WHERE clip_id = ? AND identity_id = ? LIMIT 1",
                           (clip_id, identity_id)).fetchone() is not None


def destination_faces(ws: Workspace, path: Path, identity: str, *, size: int = 256, face_type: str = "full",
                      progress: ProgressFn = no_progress) -> Destination:
    """Faces of ``identity`` in the clip at ``path``, by frame index (excluded faces included: pruning a
    face from a training set does not mean leaving it unswapped)."""
    digest = content_hash(path)
    row = ws.clip_by_hash(digest)
    ident = ws.identity_id(identity)
    if row is None or ident is None or not _extracted(ws, int(row["id"]), ident):
        log.info("extracting %s from %s before merging", identity, path)
        extract_clip(ws, identity, path, every=1, size=size, face_type=face_type, progress=progress)  # type: ignore[arg-type]
        row = ws.clip_by_hash(digest)
        if row is None:
            raise InputError("extraction did not register this clip in the workspace", path=path)
    found = faces(ws, identity, clip_id=int(row["id"]), include_excluded=True)
    return Destination(int(row["id"]), digest, identity, {f.frame_index: f for f in found})
