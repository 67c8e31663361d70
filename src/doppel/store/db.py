"""The SQLite connection behind a workspace: open, check, migrate, and one reentrant transaction.

Only the store's query classes use :class:`Database`; nothing outside :mod:`doppel.store` sees a
connection or writes SQL.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from doppel.core.clock import now
from doppel.core.errors import WorkspaceError
from doppel.store.schema import MIGRATIONS, SCHEMA_VERSION

MARKER = "doppel-workspace"


def to_blob(array: np.ndarray | None, dtype: str = "<f4") -> bytes | None:
    return None if array is None else np.ascontiguousarray(array, dtype=dtype).tobytes()


def from_blob(blob: bytes | None, shape: tuple[int, ...] = (-1,), dtype: str = "<f4") -> np.ndarray | None:
    return None if blob is None else np.frombuffer(blob, dtype=dtype).reshape(shape).copy()


def array_of(blob: bytes, shape: tuple[int, ...] = (-1,), dtype: str = "<f4") -> np.ndarray:
    """A NOT NULL array column."""
    return np.frombuffer(blob, dtype=dtype).reshape(shape).copy()


class Database:
    """One connection (rows as :class:`sqlite3.Row`) and a transaction that nests: writes inside the
    outermost ``transaction()`` block commit together or not at all."""

    def __init__(self, conn: sqlite3.Connection, path: Path | None = None) -> None:
        conn.row_factory = sqlite3.Row
        self.conn = conn
        self.path = path
        self._depth = 0

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        if self._depth:
            self._depth += 1
            try:
                yield self.conn
            finally:
                self._depth -= 1
            return
        self._depth = 1
        try:
            with self.conn:
                yield self.conn
        finally:
            self._depth = 0

    def one(self, sql: str, args: Sequence[object] = ()) -> sqlite3.Row | None:
        with self._reading():
            row: sqlite3.Row | None = self.conn.execute(sql, args).fetchone()
        return row

    def all(self, sql: str, args: Sequence[object] = ()) -> list[sqlite3.Row]:
        with self._reading():
            return self.conn.execute(sql, args).fetchall()

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        """A page or a text value damaged past what the integrity check at open sees (it checks structure,
        not that text is UTF-8) is a one-line error naming the database, not a traceback."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            if "decode" not in str(exc):
                raise  # locked, busy, a bad statement: not damage
            raise self._damaged(exc) from None
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            raise self._damaged(exc) from None

    def _damaged(self, exc: Exception) -> WorkspaceError:
        reason = str(exc).splitlines()[0][:120].encode("ascii", "backslashreplace").decode()
        return WorkspaceError(f"database is damaged ({reason})", path=self.path)

    def close(self) -> None:
        self.conn.close()

    @property
    def schema_version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])


def create(db: Path) -> None:
    """Write a new, complete database at ``db`` (through a temporary name, so it appears whole)."""
    tmp = db.with_name(f".{db.name}.tmp")
    tmp.unlink(missing_ok=True)
    conn = sqlite3.connect(tmp)
    try:
        migrate(conn, tmp)
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.executemany("INSERT INTO meta VALUES (?, ?)", [("marker", MARKER), ("created_at", now())])
        conn.commit()
    finally:
        conn.close()
    tmp.replace(db)


def open_db(db: Path) -> Database:
    """Open, check and migrate the database at ``db``; :class:`WorkspaceError` if it is not one."""
    try:
        conn = sqlite3.connect(db, timeout=30)
        conn.execute("PRAGMA foreign_keys = ON")
        row = conn.execute("SELECT value FROM meta WHERE key = 'marker'").fetchone()
        if row is None or row[0] != MARKER:
            raise sqlite3.DatabaseError("marker missing")
        result = conn.execute("PRAGMA quick_check").fetchone()
        if result is None or result[0] != "ok":
            raise sqlite3.DatabaseError(f"integrity check failed: {result[0] if result else 'no answer'}")
        migrate(conn, db)
    except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:  # text in the meta table may be damaged too
        raise WorkspaceError(f"database is corrupt or not a doppel database ({str(exc).splitlines()[0][:120]})",
                             path=db) from None
    return Database(conn, db)


def migrate(conn: sqlite3.Connection, db: Path) -> None:
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
