"""Consent records: who agreed to their likeness being used as a source, to what, on what basis.

Training with a source identity, and merging with a model of it, call :func:`require_consent`,
which refuses (:class:`~doppel.core.errors.RefusedError`) when the workspace holds no record for
that identity, and says exactly which ``doppel consent add`` command adds one.

A record is stored in the ``consents`` table. Its ``record_hash`` is the SHA-256 of the record's
canonical JSON (:func:`canonical_json`: the fields below, keys sorted, no whitespace, UTF-8), so it
can be quoted in an output's content credentials and checked later against the workspace:
``{"version": 1, "identity", "subject", "scope", "basis", "evidence_name", "evidence_sha256",
"created_at"}``. An evidence file (a scanned release, a recorded statement) is not copied into
the workspace: only its file name and SHA-256 are recorded, so the record proves which document
was meant without spreading it.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from doppel.core.errors import ConfigError, InputError, RefusedError
from doppel.faceset.workspace import Workspace, now

RECORD_VERSION = 1

BASES: dict[str, str] = {
    "signed-release": "the person signed a release covering this use",
    "own-likeness": "the person running doppel is the person whose likeness is used",
    "performer-contract": "the performer's contract with the production covers this use",
    "estate-authorisation": "the estate or rights holder of the person authorised this use",
    "public-domain-demo": "public-domain or openly licensed material, used for testing or demonstration",
}
"""The allowed consent bases (the one source of these values for the CLI and validation)."""


@dataclass(frozen=True)
class ConsentRecord:
    identity: str
    subject: str
    scope: str
    basis: str
    evidence_name: str | None
    evidence_sha256: str | None
    created_at: str
    record_hash: str
    id: int | None = None

    def canonical(self) -> dict[str, Any]:
        return {"version": RECORD_VERSION, "identity": self.identity, "subject": self.subject, "scope": self.scope,
                "basis": self.basis, "evidence_name": self.evidence_name, "evidence_sha256": self.evidence_sha256,
                "created_at": self.created_at}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def canonical_json(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def record_hash(fields: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(fields)).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _text(name: str, value: str) -> str:
    value = (value or "").strip()
    if not value:
        raise ConfigError(f"consent {name} must not be empty")
    return value


def add_consent(ws: Workspace, identity: str, subject: str, scope: str, basis: str,
                evidence: Path | None = None) -> ConsentRecord:
    """Record consent for ``identity`` (created in the workspace if it is not there yet)."""
    identity, subject, scope = _text("identity", identity), _text("subject", subject), _text("scope", scope)
    if basis not in BASES:
        raise ConfigError(f"unknown consent basis {basis!r}; choose one of: {', '.join(BASES)}")
    evidence_name = evidence_sha = None
    if evidence is not None:
        evidence = Path(evidence)
        if not evidence.is_file():
            raise InputError("evidence file not found", path=evidence)
        try:
            evidence_sha = file_sha256(evidence)
        except OSError as exc:
            raise InputError(f"evidence file cannot be read ({exc.strerror})", path=evidence) from None
        evidence_name = evidence.name
    fields = {"version": RECORD_VERSION, "identity": identity, "subject": subject, "scope": scope, "basis": basis,
              "evidence_name": evidence_name, "evidence_sha256": evidence_sha, "created_at": now()}
    digest = record_hash(fields)
    with ws.transaction() as c:
        c.execute("INSERT OR IGNORE INTO identities (name, created_at) VALUES (?, ?)", (identity, fields["created_at"]))
        ident = c.execute("SELECT id FROM identities WHERE name = ?", (identity,)).fetchone()[0]
        if c.execute("SELECT 1 FROM consents WHERE record_hash = ?", (digest,)).fetchone():
            raise ConfigError(f"an identical consent record for {identity!r} already exists")
        cur = c.execute(
            "INSERT INTO consents (identity_id, subject, scope, basis, evidence_name, evidence_sha256, created_at,"
            " record_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (ident, subject, scope, basis, evidence_name, evidence_sha, fields["created_at"], digest))
    return ConsentRecord(identity, subject, scope, basis, evidence_name, evidence_sha, str(fields["created_at"]),
                         digest, int(cur.lastrowid or 0))


def _record(row: Any) -> ConsentRecord:
    return ConsentRecord(row["name"], row["subject"], row["scope"], row["basis"], row["evidence_name"],
                         row["evidence_sha256"], row["created_at"], row["record_hash"], int(row["id"]))


_SELECT = ("SELECT c.id, i.name, c.subject, c.scope, c.basis, c.evidence_name, c.evidence_sha256, c.created_at,"
           " c.record_hash FROM consents c JOIN identities i ON i.id = c.identity_id")


def list_consents(ws: Workspace, identity: str | None = None) -> list[ConsentRecord]:
    """All consent records, oldest first (optionally for one identity)."""
    if identity is None:
        rows = ws.conn.execute(_SELECT + " ORDER BY c.id").fetchall()
    else:
        rows = ws.conn.execute(_SELECT + " WHERE i.name = ? ORDER BY c.id", (identity,)).fetchall()
    return [_record(r) for r in rows]


def add_command(ws: Workspace, identity: str) -> str:
    """The exact command that records consent for ``identity`` in this workspace."""
    return (f"doppel consent add {shlex.quote(str(ws.root))} --identity {shlex.quote(identity)} "
            f"--subject \"<who agreed>\" --scope \"<what they agreed to>\" --basis <{'|'.join(BASES)}> "
            "[--evidence FILE]")


def require_consent(ws: Workspace, identity: str) -> ConsentRecord:
    """The latest consent record for ``identity``; raises :class:`RefusedError` when there is none."""
    records = list_consents(ws, identity)
    if not records:
        raise RefusedError(f"refused: no consent record for identity {identity!r}. doppel trains on and merges a "
                           f"person's likeness only with their recorded consent; add one with: "
                           f"{add_command(ws, identity)}", path=ws.root)
    record = records[-1]
    if record_hash(record.canonical()) != record.record_hash:
        raise RefusedError(f"refused: the consent record for {identity!r} (id {record.id}) does not match its hash; "
                           "the workspace database was edited by hand. Add a new record with: "
                           f"{add_command(ws, identity)}", path=ws.root)
    return record
