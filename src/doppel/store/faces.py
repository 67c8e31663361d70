"""The ``faces``, ``tracks`` and ``frames`` tables: what extraction found, per identity and clip."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from doppel.core.errors import WorkspaceError
from doppel.store.db import Database, array_of, from_blob, to_blob
from doppel.store.identities import Identities
from doppel.store.records import FaceRecord, NewFace, NewTrack


def _face(row: sqlite3.Row, root: Path) -> FaceRecord:
    try:
        return _decode(row, root)
    except (ValueError, TypeError) as exc:  # a blob of the wrong size: the database was damaged or edited
        raise WorkspaceError(f"face {row['id']} of {row['identity']!r} is damaged ({exc}); extract that clip "
                             "again", path=root) from None


def _decode(row: sqlite3.Row, root: Path) -> FaceRecord:
    return FaceRecord(
        id=row["id"], identity=row["identity"], clip_id=row["clip_id"], frame_index=row["frame_index"],
        time=row["time"], track_id=row["track_id"],
        bbox=np.array([row["x0"], row["y0"], row["x1"], row["y1"]], dtype=np.float64),
        det_score=row["det_score"], landmarks=array_of(row["landmarks"], (-1, 2)),
        landmarks_smooth=array_of(row["landmarks_smooth"], (-1, 2)), landmark_score=row["landmark_score"],
        yaw=row["yaw"], pitch=row["pitch"], roll=row["roll"], blur=row["blur"],
        embedding=from_blob(row["embedding"]), transform=array_of(row["transform"], (2, 3), "<f8"),
        face_type=row["face_type"], size=row["size"], aligned_path=root / row["aligned_path"],
        excluded=bool(row["excluded"]), exclude_reason=row["exclude_reason"],
    )


class Faces:
    def __init__(self, db: Database, root: Path, identities: Identities) -> None:
        self._db, self._root, self._identities = db, root, identities

    def of(self, identity: str, *, clip_id: int | None = None, include_excluded: bool = False) -> list[FaceRecord]:
        """The faces of one identity (optionally of one clip), in clip and frame order."""
        ident = self._identities.require(identity)
        sql = ("SELECT f.*, i.name AS identity FROM faces f JOIN identities i ON i.id = f.identity_id "
               "WHERE f.identity_id = ?")
        args: list[object] = [ident]
        if clip_id is not None:
            sql += " AND f.clip_id = ?"
            args.append(clip_id)
        if not include_excluded:
            sql += " AND f.excluded = 0"
        sql += " ORDER BY f.clip_id, f.frame_index"
        return [_face(row, self._root) for row in self._db.all(sql, args)]

    def count(self, identity: str, clip_id: int) -> int:
        row = self._db.one("SELECT COUNT(*) FROM faces f JOIN identities i ON i.id = f.identity_id "
                           "WHERE f.clip_id = ? AND i.name = ?", (clip_id, identity))
        return int(row[0]) if row else 0

    def extracted(self, clip_id: int, identity: str) -> bool:
        """Whether extraction has examined this clip for this identity (found faces or not)."""
        ident = self._identities.id_of(identity)
        if ident is None:
            return False
        args = (clip_id, ident)
        return (self._db.one("SELECT 1 FROM frames WHERE clip_id = ? AND identity_id = ? LIMIT 1", args) is not None
                or self._db.one("SELECT 1 FROM faces WHERE clip_id = ? AND identity_id = ? LIMIT 1", args) is not None)

    def aligned_paths(self, identity: str, clip_id: int) -> list[str]:
        """Workspace-relative aligned-face paths of one identity's faces from one clip."""
        ident = self._identities.id_of(identity)
        return [] if ident is None else [r[0] for r in self._db.all(
            "SELECT aligned_path FROM faces WHERE identity_id = ? AND clip_id = ?", (ident, clip_id))]

    def replace_clip(self, identity: str, clip_id: int, tracks: list[NewTrack], faces: list[NewFace],
                     frames: list[tuple[int, float, str]]) -> None:
        """Replace one identity's tracks, faces and frame statuses for one clip, all at once.
        ``frames``: ``(frame_index, time, 'face' | 'no_face')`` per examined frame."""
        with self._db.transaction() as c:
            ident = self._identities.ensure(identity)
            args = (ident, clip_id)
            c.execute("DELETE FROM faces WHERE identity_id = ? AND clip_id = ?", args)
            c.execute("DELETE FROM frames WHERE identity_id = ? AND clip_id = ?", args)
            c.execute("DELETE FROM tracks WHERE identity_id = ? AND clip_id = ?", args)
            ids: dict[int, int] = {}
            for t in tracks:
                cur = c.execute(
                    "INSERT INTO tracks (clip_id, identity_id, first_frame, last_frame, length, embedding, similarity)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (clip_id, ident, t.first_frame, t.last_frame, t.length, to_blob(t.embedding), t.similarity))
                ids[t.key] = int(cur.lastrowid or 0)
            c.executemany(
                "INSERT INTO faces (identity_id, clip_id, track_id, frame_index, time, x0, y0, x1, y1, det_score,"
                " landmarks, landmarks_smooth, landmark_score, yaw, pitch, roll, blur, embedding, transform, face_type,"
                " size, aligned_path) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(ident, clip_id, ids.get(f.track_key) if f.track_key is not None else None, f.frame_index, f.time,
                  *f.bbox, f.det_score, to_blob(f.landmarks), to_blob(f.landmarks_smooth), f.landmark_score, f.yaw,
                  f.pitch, f.roll, f.blur, to_blob(f.embedding), to_blob(f.transform, "<f8"), f.face_type, f.size,
                  f.aligned_rel) for f in faces])
            c.executemany("INSERT INTO frames (clip_id, identity_id, frame_index, time, status) VALUES (?, ?, ?, ?, ?)",
                          [(clip_id, ident, i, t, s) for i, t, s in frames])

    def set_embeddings(self, embeddings: Mapping[int, np.ndarray]) -> None:
        """Store identity embeddings by face id."""
        with self._db.transaction() as c:
            c.executemany("UPDATE faces SET embedding = ? WHERE id = ?",
                          [(to_blob(v), fid) for fid, v in embeddings.items()])

    def exclude(self, reasons: Mapping[int, str]) -> None:
        """Prune faces (reversibly), each with its reason, by face id."""
        with self._db.transaction() as c:
            c.executemany("UPDATE faces SET excluded = 1, exclude_reason = ? WHERE id = ?",
                          [(r, fid) for fid, r in reasons.items()])

    def include(self, identity: str, reason: str | None = None) -> int:
        """Include again an identity's pruned faces (for ``reason``, or any); returns how many."""
        ident = self._identities.require(identity)
        sql = "UPDATE faces SET excluded = 0, exclude_reason = NULL WHERE identity_id = ? AND excluded = 1"
        args: list[object] = [ident]
        if reason is not None:
            sql += " AND exclude_reason = ?"
            args.append(reason)
        with self._db.transaction() as c:
            return int(c.execute(sql, args).rowcount)
