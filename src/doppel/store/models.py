"""The ``models`` table: trained models by name, their folders, identities and training step."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from doppel.core.clock import now
from doppel.store.db import Database
from doppel.store.identities import Identities
from doppel.store.records import ModelRecord

_SELECT = ("SELECT m.*, s.name AS src_name, d.name AS dst_name FROM models m "
           "LEFT JOIN identities s ON s.id = m.src_identity_id LEFT JOIN identities d ON d.id = m.dst_identity_id ")


def _model(row: sqlite3.Row, root: Path) -> ModelRecord:
    return ModelRecord(int(row["id"]), row["name"], root / row["path"], row["arch"], row["preset"],
                       int(row["resolution"]), row["face_type"], row["src_name"], row["dst_name"], row["base_model"],
                       int(row["step"]), row["created_at"], row["updated_at"])


class Models:
    def __init__(self, db: Database, root: Path, identities: Identities) -> None:
        self._db, self._root, self._identities = db, root, identities

    def get(self, name: str) -> ModelRecord | None:
        row = self._db.one(_SELECT + "WHERE m.name = ?", (name,))
        return None if row is None else _model(row, self._root)

    def by_id(self, model_id: int) -> ModelRecord | None:
        row = self._db.one(_SELECT + "WHERE m.id = ?", (model_id,))
        return None if row is None else _model(row, self._root)

    def by_folder(self, rel: str) -> ModelRecord | None:
        """The model stored in the workspace-relative folder ``rel``."""
        row = self._db.one(_SELECT + "WHERE m.path = ?", (rel,))
        return None if row is None else _model(row, self._root)

    def names(self) -> list[str]:
        return [r[0] for r in self._db.all("SELECT name FROM models ORDER BY name")]

    def register(self, name: str, *, folder_rel: str, arch: str, preset: str | None, resolution: int,
                 face_type: str, src: str | None, dst: str | None, base: str | None, step: int) -> None:
        """Insert the model, or (if it exists) record its new step."""
        stamp = now()
        with self._db.transaction() as c:
            row = c.execute("SELECT id FROM models WHERE name = ?", (name,)).fetchone()
            if row is not None:
                c.execute("UPDATE models SET step = ?, updated_at = ? WHERE id = ?", (step, stamp, row[0]))
                return
            src_id = None if src is None else self._identities.id_of(src)
            dst_id = None if dst is None else self._identities.id_of(dst)
            c.execute("INSERT INTO models (name, path, arch, preset, resolution, face_type, src_identity_id,"
                      " dst_identity_id, base_model, step, created_at, updated_at)"
                      " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      (name, folder_rel, arch, preset, resolution, face_type, src_id, dst_id, base, step, stamp,
                       stamp))

    def forget(self, name: str) -> None:
        """Remove the model's row (its folder is the caller's business)."""
        with self._db.transaction() as c:
            c.execute("DELETE FROM models WHERE name = ?", (name,))
