"""Read faces back from the workspace as typed records (the one place that decodes face rows)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from doppel.faceset.workspace import Workspace, from_blob
from doppel.ops.align import transform_points


@dataclass(frozen=True)
class FaceRecord:
    """One extracted face. Landmarks are frame pixels ``(N, 2)`` in (x, y); ``transform`` maps
    frame pixels to the ``size`` x ``size`` aligned crop stored at ``aligned_path``."""

    id: int
    identity: str
    clip_id: int
    frame_index: int
    time: float
    track_id: int | None
    bbox: np.ndarray
    det_score: float
    landmarks: np.ndarray
    landmarks_smooth: np.ndarray
    landmark_score: float | None
    yaw: float
    pitch: float
    roll: float
    blur: float
    embedding: np.ndarray | None
    transform: np.ndarray
    face_type: str
    size: int
    aligned_path: Path
    excluded: bool
    exclude_reason: str | None

    def aligned_landmarks(self, *, smooth: bool = True) -> np.ndarray:
        """Landmarks in aligned-crop pixels (the crop was cut with the smoothed transform)."""
        return transform_points(self.landmarks_smooth if smooth else self.landmarks, self.transform)


def _record(row: sqlite3.Row, ws: Workspace) -> FaceRecord:
    lm = from_blob(row["landmarks"], (-1, 2))
    assert lm is not None
    lms = from_blob(row["landmarks_smooth"], (-1, 2))
    assert lms is not None
    transform = from_blob(row["transform"], (2, 3), "<f8")
    assert transform is not None
    return FaceRecord(
        id=row["id"], identity=row["identity"], clip_id=row["clip_id"], frame_index=row["frame_index"],
        time=row["time"], track_id=row["track_id"],
        bbox=np.array([row["x0"], row["y0"], row["x1"], row["y1"]], dtype=np.float64),
        det_score=row["det_score"], landmarks=lm, landmarks_smooth=lms, landmark_score=row["landmark_score"],
        yaw=row["yaw"], pitch=row["pitch"], roll=row["roll"], blur=row["blur"],
        embedding=from_blob(row["embedding"]), transform=transform, face_type=row["face_type"],
        size=row["size"], aligned_path=ws.abs(row["aligned_path"]), excluded=bool(row["excluded"]),
        exclude_reason=row["exclude_reason"],
    )


def faces(ws: Workspace, identity: str, *, clip_id: int | None = None,
          include_excluded: bool = False) -> list[FaceRecord]:
    """The faces of one identity (optionally of one clip), in clip and frame order."""
    ident = ws.require_identity(identity)
    sql = ("SELECT f.*, i.name AS identity FROM faces f JOIN identities i ON i.id = f.identity_id "
           "WHERE f.identity_id = ?")
    args: list[object] = [ident]
    if clip_id is not None:
        sql += " AND f.clip_id = ?"
        args.append(clip_id)
    if not include_excluded:
        sql += " AND f.excluded = 0"
    sql += " ORDER BY f.clip_id, f.frame_index"
    return [_record(row, ws) for row in ws.conn.execute(sql, args)]


# -- writing (extraction) ------------------------------------------------------------------------
@dataclass(frozen=True)
class NewTrack:
    """A track to insert; ``key`` links faces to it before it has a database id."""

    key: int
    first_frame: int
    last_frame: int
    length: int
    embedding: np.ndarray | None  # float32 (D,)
    similarity: float | None


@dataclass(frozen=True)
class NewFace:
    """A face row to insert (see :class:`FaceRecord` for the meaning and shape of each field)."""

    track_key: int | None
    frame_index: int
    time: float
    bbox: tuple[float, float, float, float]
    det_score: float
    landmarks: np.ndarray
    landmarks_smooth: np.ndarray
    landmark_score: float | None
    yaw: float
    pitch: float
    roll: float
    blur: float
    embedding: np.ndarray | None
    transform: np.ndarray
    face_type: str
    size: int
    aligned_path: str  # relative to the workspace


def aligned_paths(c: sqlite3.Connection, identity_id: int, clip_id: int) -> list[str]:
    """Workspace-relative aligned-face paths of one identity's faces from one clip."""
    return [r[0] for r in c.execute("SELECT aligned_path FROM faces WHERE identity_id = ? AND clip_id = ?",
                                    (identity_id, clip_id))]


def replace_clip_faces(c: sqlite3.Connection, *, identity_id: int, clip_id: int, tracks: list[NewTrack],
                       faces: list[NewFace], frames: list[tuple[int, float, str]]) -> None:
    """Replace one identity's tracks, faces and frame statuses for one clip, inside the caller's
    transaction. ``frames``: ``(frame_index, time, 'face' | 'no_face')`` per examined frame."""
    from doppel.faceset.workspace import to_blob

    c.execute("DELETE FROM faces WHERE identity_id = ? AND clip_id = ?", (identity_id, clip_id))
    c.execute("DELETE FROM frames WHERE identity_id = ? AND clip_id = ?", (identity_id, clip_id))
    c.execute("DELETE FROM tracks WHERE identity_id = ? AND clip_id = ?", (identity_id, clip_id))
    ids: dict[int, int] = {}
    for t in tracks:
        cur = c.execute(
            "INSERT INTO tracks (clip_id, identity_id, first_frame, last_frame, length, embedding, similarity)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (clip_id, identity_id, t.first_frame, t.last_frame, t.length, to_blob(t.embedding), t.similarity))
        ids[t.key] = int(cur.lastrowid)  # type: ignore[arg-type]
    c.executemany(
        "INSERT INTO faces (identity_id, clip_id, track_id, frame_index, time, x0, y0, x1, y1, det_score,"
        " landmarks, landmarks_smooth, landmark_score, yaw, pitch, roll, blur, embedding, transform, face_type,"
        " size, aligned_path) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(identity_id, clip_id, ids.get(f.track_key) if f.track_key is not None else None, f.frame_index, f.time,
          *f.bbox, f.det_score, to_blob(f.landmarks), to_blob(f.landmarks_smooth), f.landmark_score, f.yaw,
          f.pitch, f.roll, f.blur, to_blob(f.embedding), to_blob(f.transform, "<f8"), f.face_type, f.size,
          f.aligned_path) for f in faces])
    c.executemany("INSERT INTO frames (clip_id, identity_id, frame_index, time, status) VALUES (?, ?, ?, ?, ?)",
                  [(clip_id, identity_id, i, t, s) for i, t, s in frames])
