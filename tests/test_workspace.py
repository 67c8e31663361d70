import sqlite3
from pathlib import Path

import numpy as np
import pytest

from conftest import query, raw_db
from doppel.core.errors import WorkspaceError
from doppel.store import DB_NAME, SUBDIRS, Workspace
from doppel.store.db import from_blob, to_blob
from doppel.store.schema import SCHEMA_VERSION


def test_init_creates_versioned_store_and_folders(tmp_path: Path) -> None:
    with Workspace.init(tmp_path / "ws") as ws:
        assert ws.schema_version == SCHEMA_VERSION
        assert all((ws.root / d).is_dir() for d in SUBDIRS)
        tables = {r[0] for r in query(ws, "SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"clips", "identities", "faces", "frames", "tracks", "jobs"} <= tables


def test_init_refuses_existing_or_nonempty(tmp_path: Path) -> None:
    Workspace.init(tmp_path / "ws").close()
    with pytest.raises(WorkspaceError, match="already a doppel workspace"):
        Workspace.init(tmp_path / "ws")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "file.txt").write_text("x")
    with pytest.raises(WorkspaceError, match="not empty"):
        Workspace.init(tmp_path / "other")


def test_open_rejects_missing_and_corrupt(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="no such workspace"):
        Workspace.open(tmp_path / "nope")
    (tmp_path / "plain").mkdir()
    with pytest.raises(WorkspaceError, match="not a doppel workspace"):
        Workspace.open(tmp_path / "plain")
    Workspace.init(tmp_path / "ws").close()
    db = tmp_path / "ws" / DB_NAME
    db.write_bytes(b"garbage" * 1000)
    with pytest.raises(WorkspaceError, match="corrupt"):
        Workspace.open(tmp_path / "ws")


def test_transaction_rolls_back_on_error(tmp_path: Path) -> None:
    with Workspace.init(tmp_path / "ws") as ws:
        ws.identities.ensure("alice")
        with pytest.raises(sqlite3.IntegrityError), raw_db(ws) as c:
            c.execute("INSERT INTO identities (name, created_at) VALUES ('bob', 'now')")
            c.execute("INSERT INTO identities (name, created_at) VALUES ('alice', 'now')")  # duplicate
        assert ws.identities.names() == ["alice"]


def test_migrations_upgrade_an_old_database(tmp_path: Path) -> None:
    Workspace.init(tmp_path / "ws").close()
    with Workspace.open(tmp_path / "ws") as ws:
        assert ws.schema_version == SCHEMA_VERSION
    conn = sqlite3.connect(tmp_path / "ws" / DB_NAME)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(WorkspaceError, match="newer than this doppel"):
        Workspace.open(tmp_path / "ws")


def test_blobs_roundtrip_without_pickle() -> None:
    lm = np.random.default_rng(0).normal(size=(68, 2)).astype(np.float32)
    assert np.array_equal(from_blob(to_blob(lm), (68, 2)), lm)
    m = np.arange(6, dtype=np.float64).reshape(2, 3)
    assert np.array_equal(from_blob(to_blob(m, "<f8"), (2, 3), "<f8"), m)
    assert from_blob(None) is None


def test_a_damaged_face_row_is_one_clear_error(tmp_path: Path) -> None:
    """Found by tests/test_fuzz.py: a landmarks blob of the wrong size raised a bare ValueError."""
    import facefixtures
    from doppel.core.errors import WorkspaceError

    facefixtures.make_workspace(tmp_path / "ws", n=2, size=64).close()
    with sqlite3.connect(tmp_path / "ws" / "doppel.db") as conn:
        conn.execute("UPDATE faces SET transform = ? WHERE id = 1", (b"\x00" * 7,))
    with Workspace.open(tmp_path / "ws") as ws, pytest.raises(WorkspaceError, match="face 1 .* is damaged"):
        ws.faces.of("astronaut")


def test_text_that_is_not_utf8_is_one_clear_error(tmp_path: Path) -> None:
    """Found by the long fuzzing run (bench/bench_fuzz.py): bytes flipped inside a text value pass SQLite's
    integrity check, and reading them raised a bare UnicodeDecodeError."""
    Workspace.init(tmp_path / "ws").close()
    db = tmp_path / "ws" / DB_NAME
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO identities (name, created_at) VALUES (CAST(? AS TEXT), 'x')", (b"al\xc5ce",))
    with Workspace.open(tmp_path / "ws") as ws, pytest.raises(WorkspaceError, match="database is damaged") as err:
        ws.identities.names()
    assert str(db) in str(err.value)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE meta SET value = CAST(? AS TEXT) WHERE key = 'marker'", (b"doppel\xc5",))
    with pytest.raises(WorkspaceError, match="corrupt or not a doppel database"):
        Workspace.open(tmp_path / "ws")
