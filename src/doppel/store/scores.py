"""The ``glitch_scores`` table: review's per-frame glitch scores, apart from merge's frame rows so a
re-merge never erases them."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from doppel.store.db import Database
from doppel.store.records import ScoreRecord


class Scores:
    def __init__(self, db: Database) -> None:
        self._db = db

    def replace(self, render_id: int, scores: Iterable[tuple[int, float, list[dict[str, Any]]]]) -> None:
        """Store ``(frame, score, reasons)`` for the render's frames (rows for other frames stay)."""
        with self._db.transaction() as c:
            c.executemany("INSERT OR REPLACE INTO glitch_scores (render_id, frame_index, score, reasons) "
                          "VALUES (?, ?, ?, ?)",
                          [(render_id, f, s, json.dumps(r)) for f, s, r in scores])

    def of(self, render_id: int) -> list[ScoreRecord]:
        """The render's scores in frame order, with each frame's merge status."""
        return self._of(render_id)

    def _of(self, render_id: int, frame: int | None = None) -> list[ScoreRecord]:
        sql = ("SELECT g.frame_index, g.score, g.reasons, f.status, f.shot_cut FROM glitch_scores g "
               "LEFT JOIN render_frames f ON f.render_id = g.render_id AND f.frame_index = g.frame_index "
               "WHERE g.render_id = ?")
        args: list[object] = [render_id]
        if frame is not None:
            sql, args = sql + " AND g.frame_index = ?", [*args, frame]
        rows = self._db.all(sql + " ORDER BY g.frame_index", args)
        return [ScoreRecord(int(r["frame_index"]), float(r["score"]), json.loads(r["reasons"]), r["status"],
                            bool(r["shot_cut"])) for r in rows]

    def at(self, render_id: int, frame: int) -> ScoreRecord | None:
        found = self._of(render_id, frame)
        return found[0] if found else None

    def count(self, render_id: int) -> int:
        row = self._db.one("SELECT COUNT(*) FROM glitch_scores WHERE render_id = ?", (render_id,))
        return int(row[0]) if row else 0
