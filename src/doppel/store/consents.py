"""The ``consents`` table. What a record means and how it is checked is :mod:`doppel.provenance.consent`'s."""

from __future__ import annotations

import sqlite3

from doppel.core.errors import ConfigError
from doppel.store.db import Database
from doppel.store.identities import Identities
from doppel.store.records import ConsentRecord

_SELECT = ("SELECT c.id, i.name, c.subject, c.scope, c.basis, c.evidence_name, c.evidence_sha256, c.created_at,"
           " c.record_hash FROM consents c JOIN identities i ON i.id = c.identity_id")


def _row(r: sqlite3.Row) -> ConsentRecord:
    return ConsentRecord(r["name"], r["subject"], r["scope"], r["basis"], r["evidence_name"], r["evidence_sha256"],
                         r["created_at"], r["record_hash"], int(r["id"]))


class Consents:
    def __init__(self, db: Database, identities: Identities) -> None:
        self._db, self._identities = db, identities

    def add(self, record: ConsentRecord) -> int:
        """Store a record (its identity created if new); :class:`ConfigError` if an identical one exists."""
        r = record
        with self._db.transaction() as c:
            ident = self._identities.ensure(r.identity)
            if c.execute("SELECT 1 FROM consents WHERE record_hash = ?", (r.record_hash,)).fetchone():
                raise ConfigError(f"an identical consent record for {r.identity!r} already exists")
            cur = c.execute(
                "INSERT INTO consents (identity_id, subject, scope, basis, evidence_name, evidence_sha256, created_at,"
                " record_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (ident, r.subject, r.scope, r.basis, r.evidence_name, r.evidence_sha256, r.created_at, r.record_hash))
            return int(cur.lastrowid or 0)

    def of(self, identity: str | None = None) -> list[ConsentRecord]:
        """All records, oldest first (optionally for one identity)."""
        if identity is None:
            return [_row(r) for r in self._db.all(_SELECT + " ORDER BY c.id")]
        return [_row(r) for r in self._db.all(_SELECT + " WHERE i.name = ? ORDER BY c.id", (identity,))]

    def has_hash(self, record_hash: str) -> bool:
        return self._db.one("SELECT 1 FROM consents WHERE record_hash = ?", (record_hash,)) is not None
