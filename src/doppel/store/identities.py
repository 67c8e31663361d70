"""The ``identities`` table: the people a workspace knows, by name."""

from __future__ import annotations

from pathlib import Path

from doppel.core.clock import now
from doppel.core.errors import WorkspaceError
from doppel.core.names import check_identity_name
from doppel.store.db import Database


class Identities:
    def __init__(self, db: Database, root: Path) -> None:
        self._db, self._root = db, root

    def id_of(self, name: str) -> int | None:
        row = self._db.one("SELECT id FROM identities WHERE name = ?", (name,))
        return None if row is None else int(row[0])

    def ensure(self, name: str) -> int:
        """The identity's id, creating it if it is new (a new name must pass :func:`check_identity_name`)."""
        if self.id_of(name) is None:
            check_identity_name(name)
        with self._db.transaction() as c:
            c.execute("INSERT OR IGNORE INTO identities (name, created_at) VALUES (?, ?)", (name, now()))
            return int(c.execute("SELECT id FROM identities WHERE name = ?", (name,)).fetchone()[0])

    def require(self, name: str) -> int:
        ident = self.id_of(name)
        if ident is None:
            known = ", ".join(self.names()) or "none yet"
            raise WorkspaceError(f"no identity {name!r} in this workspace (known: {known})", path=self._root)
        return ident

    def names(self) -> list[str]:
        return [r[0] for r in self._db.all("SELECT name FROM identities ORDER BY name")]
