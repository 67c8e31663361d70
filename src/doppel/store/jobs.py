"""The ``jobs`` table: a log of the long operations run on the workspace, with their parameters and results."""

from __future__ import annotations

import json
from typing import Any

from doppel.core.clock import now
from doppel.store.db import Database


def _json(data: dict[str, Any] | None) -> str | None:
    return None if data is None else json.dumps(data, sort_keys=True, default=str)


class Jobs:
    def __init__(self, db: Database) -> None:
        self._db = db

    def start(self, kind: str, params: dict[str, Any]) -> int:
        with self._db.transaction() as c:
            cur = c.execute("INSERT INTO jobs (kind, status, params, started_at) VALUES (?, 'running', ?, ?)",
                            (kind, _json(params), now()))
            return int(cur.lastrowid or 0)

    def finish(self, job_id: int, status: str, result: dict[str, Any] | None = None) -> None:
        with self._db.transaction() as c:
            c.execute("UPDATE jobs SET status = ?, result = ?, finished_at = ? WHERE id = ?",
                      (status, _json(result), now(), job_id))

    def record(self, kind: str, params: dict[str, Any], result: dict[str, Any], started_at: str) -> int:
        """Log a job that has already finished."""
        with self._db.transaction() as c:
            cur = c.execute("INSERT INTO jobs (kind, status, params, result, started_at, finished_at)"
                            " VALUES (?, 'done', ?, ?, ?, ?)", (kind, _json(params), _json(result), started_at, now()))
            return int(cur.lastrowid or 0)

    def count(self, kind: str | None = None) -> int:
        sql, args = "SELECT COUNT(*) FROM jobs", []
        if kind is not None:
            sql, args = sql + " WHERE kind = ?", [kind]
        row = self._db.one(sql, args)
        return int(row[0]) if row else 0
