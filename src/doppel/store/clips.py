"""The ``clips`` table: every video, image folder or image that entered the workspace, by content hash."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from doppel.core.clock import now
from doppel.core.errors import InputError, WorkspaceError
from doppel.store.db import Database
from doppel.store.records import ClipRecord, NewClip


def _clip(row: sqlite3.Row) -> ClipRecord:
    return ClipRecord(int(row["id"]), Path(row["path"]), row["content_hash"], row["kind"], int(row["width"]),
                      int(row["height"]), float(row["fps"]), int(row["frame_count"]), float(row["duration"]),
                      bool(row["has_audio"]), row["added_at"])


class Clips:
    def __init__(self, db: Database, root: Path) -> None:
        self._db, self._root = db, root

    def by_hash(self, content_hash: str) -> ClipRecord | None:
        row = self._db.one("SELECT * FROM clips WHERE content_hash = ?", (content_hash,))
        return None if row is None else _clip(row)

    def get(self, clip_id: int) -> ClipRecord:
        row = self._db.one("SELECT * FROM clips WHERE id = ?", (clip_id,))
        if row is None:
            raise WorkspaceError(f"no clip {clip_id} in this workspace", path=self._root)
        return _clip(row)

    def path_of(self, clip_id: int, *, what: str = "this") -> Path:
        """The clip's file, checked to still exist (``what`` names who needs it in the error)."""
        row = self._db.one("SELECT path FROM clips WHERE id = ?", (clip_id,))
        if row is None:
            raise WorkspaceError(f"{what}: its clip is no longer in the workspace", path=self._root)
        path = Path(row["path"])
        if not path.exists():
            raise InputError(f"{what}: its input clip is no longer there", path=path)
        return path

    def add(self, clip: NewClip) -> int:
        """Register a clip (or return the existing one with that hash)."""
        with self._db.transaction() as c:
            row = c.execute("SELECT id FROM clips WHERE content_hash = ?", (clip.content_hash,)).fetchone()
            if row is not None:
                return int(row[0])
            cur = c.execute(
                "INSERT INTO clips (path, content_hash, kind, width, height, fps, frame_count, duration, has_audio,"
                " added_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (clip.path, clip.content_hash, clip.kind, clip.width, clip.height, clip.fps, clip.frame_count,
                 clip.duration, int(clip.has_audio), now()))
            return int(cur.lastrowid or 0)
