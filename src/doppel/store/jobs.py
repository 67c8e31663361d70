"""The ``jobs`` table: a log of the long operations run on the workspace, with their parameters and results."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from doppel.core.clock import now
from doppel.store.db import Database
from doppel.store.records import JobRecord


def _json(data: dict[str, Any] | None) -> str | None:
    return None if data is None else json.dumps(data, sort_keys=True, default=str)


def _job(row: sqlite3.Row) -> JobRecord:
    return JobRecord(int(row["id"]), row["kind"], row["status"], json.loads(row["params"] or "{}"),
                     json.loads(row["result"]) if row["result"] else None, row["started_at"], row["finished_at"])


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

    def update(self, job_id: int, result: dict[str, Any]) -> None:
        """Replace a running job's result so far (a long job's progress, for readers in other processes)."""
        with self._db.transaction() as c:
            c.execute("UPDATE jobs SET result = ? WHERE id = ?", (_json(result), job_id))

    def latest(self, kind: str, **params: Any) -> JobRecord | None:
        """The last job of ``kind`` whose parameters include ``params`` (e.g. ``jobfile=...``), or None."""
        for row in self._db.all("SELECT * FROM jobs WHERE kind = ? ORDER BY id DESC", (kind,)):
            record = _job(row)
            if all(record.params.get(k) == v for k, v in params.items()):
                return record
        return None

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
