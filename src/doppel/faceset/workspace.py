"""The workspace: one folder, one SQLite database, folders for face sets, models and renders.

Every write goes through :meth:`Workspace.transaction`, so a failure leaves the database as it
was. Files are written to a temporary name and renamed (see :mod:`doppel.io.atomic`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from doppel.core.errors import WorkspaceError
from doppel.faceset.schema import MIGRATIONS, SCHEMA_VERSION

DB_NAME = "doppel.db"
SUBDIRS = ("facesets", "models", "renders", "keys")
MARKER = "doppel-workspace"


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def to_blob(array: np.ndarray | None, dtype: str = "<f4") -> bytes | None:
    return None if array is None else np.ascontiguousarray(array, dtype=dtype).tobytes()


def from_blob(blob: bytes | None, shape: tuple[int, ...] = (-1,), dtype: str = "<f4") -> np.ndarray | None:
    return None if blob is None else np.frombuffer(blob, dtype=dtype).reshape(shape).copy()


class Workspace:
    """An open workspace. Create with :meth:`init`, open with :meth:`open`; close when done."""

    def __init__(self, root: Path, conn: sqlite3.Connection) -> None:
        self.root = root
        self.conn = conn

    # -- lifecycle -----------------------------------------------------------------------------
    @classmethod
    def init(cls, root: str | Path) -> Workspace:
        root = Path(root)
        if (root / DB_NAME).exists():
            raise WorkspaceError("is already a doppel workspace", path=root)
        if root.exists() and any(root.iterdir()):
            raise WorkspaceError("exists and is not empty; choose a new folder", path=root)
        root.mkdir(parents=True, exist_ok=True)
        for sub in SUBDIRS:
            (root / sub).mkdir(exist_ok=True)
        from doppel.provenance.keys import create_workspace_keys  # the content-credentials signing identity

        create_workspace_keys(root / "keys")
        tmp = root / f".{DB_NAME}.tmp"
        tmp.unlink(missing_ok=True)
        conn = sqlite3.connect(tmp)
        try:
            _migrate(conn, tmp)
            conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            conn.executemany("INSERT INTO meta VALUES (?, ?)",
                             [("marker", MARKER), ("created_at", now())])
            conn.commit()
        finally:
            conn.close()
        tmp.replace(root / DB_NAME)  # the workspace exists only once its database is complete
        return cls.open(root)

    @classmethod
    def open(cls, root: str | Path) -> Workspace:
        root = Path(root)
        db = root / DB_NAME
        if not root.is_dir():
            raise WorkspaceError("no such workspace; create it with `doppel init`", path=root)
        if not db.is_file():
            raise WorkspaceError(f"not a doppel workspace (no {DB_NAME}); create one with `doppel init`",
                                 path=root)
        try:
            conn = sqlite3.connect(db, timeout=30)
            conn.execute("PRAGMA foreign_keys = ON")
            row = conn.execute("SELECT value FROM meta WHERE key = 'marker'").fetchone()
            if row is None or row[0] != MARKER:
                raise sqlite3.DatabaseError("marker missing")
            _check(conn)
            _migrate(conn, db)
        except sqlite3.DatabaseError as exc:
            raise WorkspaceError(f"database is corrupt or not a doppel database ({exc})", path=db) from None
        conn.row_factory = sqlite3.Row
        return cls(root, conn)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All-or-nothing block of writes."""
        with self.conn:
            yield self.conn

    @property
    def schema_version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    # -- paths ---------------------------------------------------------------------------------
    def faceset_dir(self, identity: str) -> Path:
        return self.root / "facesets" / identity

    def models_dir(self) -> Path:
        return self.root / "models"

    def renders_dir(self) -> Path:
        return self.root / "renders"

    def rel(self, path: Path) -> str:
        return path.resolve().relative_to(self.root.resolve()).as_posix()

    def abs(self, rel: str) -> Path:
        return self.root / rel

    # -- identities ----------------------------------------------------------------------------
    def identity_id(self, name: str, *, create: bool = False) -> int | None:
        row = self.conn.execute("SELECT id FROM identities WHERE name = ?", (name,)).fetchone()
        if row is not None:
            return int(row[0])
        if not create:
            return None
        with self.transaction() as c:
            cur = c.execute("INSERT INTO identities (name, created_at) VALUES (?, ?)", (name, now()))
        return int(cur.lastrowid)  # type: ignore[arg-type]

    def require_identity(self, name: str) -> int:
        ident = self.identity_id(name)
        if ident is None:
            known = ", ".join(self.identities()) or "none yet"
            raise WorkspaceError(f"no identity {name!r} in this workspace (known: {known})", path=self.root)
        return ident

    def identities(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT name FROM identities ORDER BY name")]

    # -- clips ---------------------------------------------------------------------------------
    def clip_by_hash(self, content_hash: str) -> sqlite3.Row | None:
        return self.conn.execute("SELECT * FROM clips WHERE content_hash = ?", (content_hash,)).fetchone()

    def add_clip(self, c: sqlite3.Connection, *, path: str, content_hash: str, kind: str, width: int,
                 height: int, fps: float, frame_count: int, duration: float, has_audio: bool) -> int:
        """Insert a clip inside the caller's transaction (or return the existing one with that hash)."""
        row = c.execute("SELECT id FROM clips WHERE content_hash = ?", (content_hash,)).fetchone()
        if row is not None:
            return int(row[0])
        cur = c.execute(
            "INSERT INTO clips (path, content_hash, kind, width, height, fps, frame_count, duration, has_audio,"
            " added_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (path, content_hash, kind, width, height, fps, frame_count, duration, int(has_audio), now()))
        return int(cur.lastrowid)  # type: ignore[arg-type]

    # -- jobs ----------------------------------------------------------------------------------
    def start_job(self, kind: str, params: dict[str, Any]) -> int:
        with self.transaction() as c:
            cur = c.execute("INSERT INTO jobs (kind, status, params, started_at) VALUES (?, 'running', ?, ?)",
                            (kind, json.dumps(params, sort_keys=True, default=str), now()))
        return int(cur.lastrowid)  # type: ignore[arg-type]

    def finish_job(self, job_id: int, status: str, result: dict[str, Any] | None = None) -> None:
        with self.transaction() as c:
            c.execute("UPDATE jobs SET status = ?, result = ?, finished_at = ? WHERE id = ?",
                      (status, json.dumps(result, default=str) if result is not None else None, now(), job_id))


def _check(conn: sqlite3.Connection) -> None:
    result = conn.execute("PRAGMA quick_check").fetchone()
    if result is None or result[0] != "ok":
        raise sqlite3.DatabaseError(f"integrity check failed: {result[0] if result else 'no answer'}")


def _migrate(conn: sqlite3.Connection, db: Path) -> None:
    """Bring the database up to :data:`SCHEMA_VERSION`, one migration per transaction."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise WorkspaceError(f"database schema v{version} is newer than this doppel (v{SCHEMA_VERSION}); "
                             "upgrade doppel", path=db)
    for number in range(version, SCHEMA_VERSION):
        try:
            conn.execute("BEGIN")
            for statement in _statements(MIGRATIONS[number]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number + 1}")
            conn.commit()
        except BaseException:
            conn.rollback()
            raise


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (sqlite3.executescript would commit implicitly)."""
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
