"""The ``renders``, ``render_people``, ``render_frames`` and ``overrides`` tables.

A render is one merge of one model (or several, one per destination person: ``render_people``)
into one clip with one set of base settings (and the overrides given with it). Its ``uid`` is
random and goes into the watermark payload. Review edits add overrides to a render.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from doppel.core.clock import now
from doppel.core.errors import WorkspaceError
from doppel.store.db import Database
from doppel.store.records import FrameRow, OverrideRecord, RenderRecord


def _render(row: sqlite3.Row) -> RenderRecord:
    return RenderRecord(int(row["id"]), row["uid"], row["model_id"], int(row["clip_id"]), row["output_path"],
                        json.loads(row["settings"]), row["settings_hash"], row["watermark_payload"],
                        row["consent_hash"], row["status"], row["created_at"], row["finished_at"])


class Renders:
    def __init__(self, db: Database, root: Path) -> None:
        self._db, self._root = db, root

    # -- renders -------------------------------------------------------------------------------
    def get(self, render: int | str) -> RenderRecord:
        """A render by id (int) or uid (str)."""
        col = "id" if isinstance(render, int) else "uid"
        row = self._db.one(f"SELECT * FROM renders WHERE {col} = ?", (render,))
        if row is None:
            raise WorkspaceError(f"no render {render!r} in this workspace", path=self._root)
        return _render(row)

    def all(self, clip_id: int | None = None) -> list[RenderRecord]:
        sql, args = "SELECT * FROM renders", []
        if clip_id is not None:
            sql, args = sql + " WHERE clip_id = ?", [clip_id]
        return [_render(r) for r in self._db.all(sql + " ORDER BY id", args)]

    def matching(self, *, payload: int | None = None, uid: str | None = None) -> list[RenderRecord]:
        """Renders carrying this watermark payload or with this uid (what ``doppel verify`` looks up)."""
        rows: list[sqlite3.Row] = []
        if payload is not None:
            rows += self._db.all("SELECT * FROM renders WHERE watermark_payload = ?", (payload,))
        if uid:
            rows += self._db.all("SELECT * FROM renders WHERE uid = ?", (uid,))
        return [_render(r) for r in rows]

    def latest_like(self, *, model_id: int | None, clip_id: int, output_path: str,
                    settings_hash: str) -> RenderRecord | None:
        """The last render with this model, clip, output and settings (the one a rerun resumes)."""
        row = self._db.one("SELECT * FROM renders WHERE model_id IS ? AND clip_id = ? AND output_path = ? "
                           "AND settings_hash = ? ORDER BY id DESC LIMIT 1",
                           (model_id, clip_id, output_path, settings_hash))
        return None if row is None else _render(row)

    def create(self, *, uid: str, model_id: int | None, clip_id: int, output_path: str, settings: dict[str, Any],
               settings_hash: str, watermark_payload: int | None, consent_hash: str | None,
               overrides: Sequence[tuple[int, int, dict[str, Any]]],
               others: Sequence[tuple[int | None, str]] = ()) -> RenderRecord:
        """A new running render, with the overrides it starts with and the ``(model id, destination identity)``
        of each person it swaps after the first, in one transaction."""
        with self._db.transaction() as c:
            cur = c.execute(
                "INSERT INTO renders (uid, model_id, clip_id, output_path, settings, settings_hash, watermark_payload,"
                " consent_hash, status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'running', ?)",
                (uid, model_id, clip_id, output_path, json.dumps(settings, sort_keys=True), settings_hash,
                 watermark_payload, consent_hash, now()))
            render_id = int(cur.lastrowid or 0)
            for first, last, changes in overrides:
                self.add_override(render_id, first, last, changes)
            c.executemany("INSERT INTO render_people (render_id, position, model_id, identity) VALUES (?, ?, ?, ?)",
                          [(render_id, i + 1, m, ident) for i, (m, ident) in enumerate(others)])
        return self.get(render_id)

    def others(self, render_id: int) -> list[tuple[int | None, str]]:
        """``(model id, destination identity)`` of each person the render swaps after its own model's, in order."""
        return [(r["model_id"], r["identity"]) for r in self._db.all(
            "SELECT model_id, identity FROM render_people WHERE render_id = ? ORDER BY position", (render_id,))]

    def restart(self, render_id: int, consent_hash: str | None) -> RenderRecord:
        with self._db.transaction() as c:
            c.execute("UPDATE renders SET status = 'running', finished_at = NULL, consent_hash = ? WHERE id = ?",
                      (consent_hash, render_id))
        return self.get(render_id)

    def finish(self, render_id: int, status: str) -> None:
        with self._db.transaction() as c:
            c.execute("UPDATE renders SET status = ?, finished_at = ? WHERE id = ?", (status, now(), render_id))

    # -- frames --------------------------------------------------------------------------------
    def record_frames(self, render_id: int, rows: Iterable[FrameRow]) -> None:
        with self._db.transaction() as c:
            c.executemany(
                "INSERT OR REPLACE INTO render_frames (render_id, frame_index, status, occlusion, shot_cut) "
                "VALUES (?, ?, ?, ?, ?)",
                [(render_id, r.frame_index, r.status, r.occlusion, int(r.shot_cut)) for r in rows])

    def frames(self, render_id: int) -> list[FrameRow]:
        return [FrameRow(r["frame_index"], r["status"], r["occlusion"], bool(r["shot_cut"])) for r in self._db.all(
            "SELECT * FROM render_frames WHERE render_id = ? ORDER BY frame_index", (render_id,))]

    def frame(self, render_id: int, index: int) -> FrameRow | None:
        r = self._db.one("SELECT * FROM render_frames WHERE render_id = ? AND frame_index = ?", (render_id, index))
        return None if r is None else FrameRow(r["frame_index"], r["status"], r["occlusion"], bool(r["shot_cut"]))

    # -- overrides -----------------------------------------------------------------------------
    def add_override(self, render_id: int, first: int, last: int, changes: dict[str, Any]) -> int:
        """Store a (validated, by the caller) partial settings change for ``first..last``; returns its id."""
        with self._db.transaction() as c:
            cur = c.execute("INSERT INTO overrides (render_id, first_frame, last_frame, settings, created_at) "
                            "VALUES (?, ?, ?, ?, ?)",
                            (render_id, first, last, json.dumps(changes, sort_keys=True, default=str), now()))
            return int(cur.lastrowid or 0)

    def remove_override(self, override_id: int) -> None:
        with self._db.transaction() as c:
            if c.execute("DELETE FROM overrides WHERE id = ?", (override_id,)).rowcount == 0:
                raise WorkspaceError(f"no override {override_id} in this workspace", path=self._root)

    def overrides(self, render_id: int) -> list[OverrideRecord]:
        return [OverrideRecord(int(r["id"]), render_id, int(r["first_frame"]), int(r["last_frame"]),
                               json.loads(r["settings"]))
                for r in self._db.all("SELECT * FROM overrides WHERE render_id = ? ORDER BY id", (render_id,))]
