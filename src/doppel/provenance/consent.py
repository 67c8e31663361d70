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

import dataclasses
import shlex
from pathlib import Path

from doppel.core.clock import now
from doppel.core.errors import ConfigError, InputError, RefusedError
from doppel.core.hashing import file_sha256
from doppel.core.names import check_identity_name
from doppel.store import Workspace
from doppel.store.records import CONSENT_VERSION, ConsentRecord, canonical_json, record_hash

BASES: dict[str, str] = {
    "signed-release": "the person signed a release covering this use",
    "own-likeness": "the person running doppel is the person whose likeness is used",
    "performer-contract": "the performer's contract with the production covers this use",
    "estate-authorisation": "the estate or rights holder of the person authorised this use",
    "public-domain-demo": "public-domain or openly licensed material, used for testing or demonstration",
}
"""The allowed consent bases (the one source of these values for the CLI and validation)."""


def _text(name: str, value: str) -> str:
    value = (value or "").strip()
    if not value:
        raise ConfigError(f"consent {name} must not be empty")
    return value


def add_consent(ws: Workspace, identity: str, subject: str, scope: str, basis: str,
                evidence: Path | None = None) -> ConsentRecord:
    """Record consent for ``identity`` (created in the workspace if it is not there yet)."""
    identity, subject, scope = _text("identity", identity), _text("subject", subject), _text("scope", scope)
    check_identity_name(identity)
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
    fields = {"version": CONSENT_VERSION, "identity": identity, "subject": subject, "scope": scope, "basis": basis,
              "evidence_name": evidence_name, "evidence_sha256": evidence_sha, "created_at": now()}
    record = ConsentRecord(identity, subject, scope, basis, evidence_name, evidence_sha, str(fields["created_at"]),
                           record_hash(fields))
    return dataclasses.replace(record, id=ws.consents.add(record))


def list_consents(ws: Workspace, identity: str | None = None) -> list[ConsentRecord]:
    """All consent records, oldest first (optionally for one identity)."""
    return ws.consents.of(identity)


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
    if not record.intact():
        raise RefusedError(f"refused: the consent record for {identity!r} (id {record.id}) does not match its hash; "
                           "the workspace database was edited by hand. Add a new record with: "
                           f"{add_command(ws, identity)}", path=ws.root)
    return record


def check_consent(record: ConsentRecord | None, identity: str) -> ConsentRecord:
    """What a stage that uses ``identity``'s likeness demands of the consent it is handed: a record for that
    identity whose content still matches its hash. Raises :class:`RefusedError` otherwise."""
    if record is None:
        raise RefusedError(f"refused: no consent record for identity {identity!r}; doppel uses a person's likeness "
                           "only with their recorded consent (`doppel consent add`)")
    if record.identity != identity:
        raise RefusedError(f"refused: the consent record given is for {record.identity!r}, not {identity!r}")
    if not record.intact():
        raise RefusedError(f"refused: the consent record for {identity!r} (id {record.id}) does not match its hash")
    return record


__all__ = ["BASES", "CONSENT_VERSION", "ConsentRecord", "add_consent", "canonical_json", "check_consent",
           "list_consents", "record_hash", "require_consent"]
