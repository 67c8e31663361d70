"""Consent records: adding, listing, hashing, and refusal without a record."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from conftest import raw_db
from doppel.core.errors import ConfigError, InputError, RefusedError
from doppel.provenance.consent import BASES, add_consent, list_consents, record_hash, require_consent
from doppel.store import Workspace
from doppel.workflow.workspace import create_workspace


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    with create_workspace(tmp_path / "ws") as w:
        yield w


def test_refused_without_consent_names_the_command(ws: Workspace) -> None:
    with pytest.raises(RefusedError) as info:
        require_consent(ws, "alice")
    message = info.value.message
    assert "no consent record for identity 'alice'" in message
    assert f"doppel consent add {ws.root} --identity alice" in message
    assert "--basis <" + "|".join(BASES) + ">" in message
    assert info.value.exit_code != 0


def test_add_then_require(ws: Workspace, tmp_path: Path) -> None:
    evidence = tmp_path / "release.pdf"
    evidence.write_bytes(b"%PDF-1.4 signed release")
    rec = add_consent(ws, "alice", "Alice Example", "face replacement in film X", "signed-release", evidence)
    assert rec.evidence_name == "release.pdf"
    assert rec.evidence_sha256 == hashlib.sha256(evidence.read_bytes()).hexdigest()
    fields = rec.canonical()
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert rec.record_hash == hashlib.sha256(canonical).hexdigest() == record_hash(fields)
    assert require_consent(ws, "alice") == rec
    assert "alice" in ws.identities.names()
    with pytest.raises(RefusedError):
        require_consent(ws, "bob")  # consent is per identity


def test_list_and_latest(ws: Workspace) -> None:
    a = add_consent(ws, "alice", "Alice", "scope one", "own-likeness", None)
    b = add_consent(ws, "bob", "Bob", "scope", "public-domain-demo", None)
    a2 = add_consent(ws, "alice", "Alice", "scope two", "signed-release", None)
    assert [r.record_hash for r in list_consents(ws)] == [a.record_hash, b.record_hash, a2.record_hash]
    assert [r.scope for r in list_consents(ws, "alice")] == ["scope one", "scope two"]
    assert require_consent(ws, "alice").record_hash == a2.record_hash


def test_bad_input(ws: Workspace, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown consent basis 'because'"):
        add_consent(ws, "alice", "Alice", "scope", "because", None)
    with pytest.raises(ConfigError, match="subject must not be empty"):
        add_consent(ws, "alice", "  ", "scope", "own-likeness", None)
    with pytest.raises(InputError, match="evidence file not found"):
        add_consent(ws, "alice", "Alice", "scope", "own-likeness", tmp_path / "missing.pdf")
    assert list_consents(ws) == []


def test_tampered_record_is_refused(ws: Workspace) -> None:
    add_consent(ws, "alice", "Alice", "only a test", "own-likeness", None)
    with raw_db(ws) as c:
        c.execute("UPDATE consents SET scope = 'anything at all'")
    with pytest.raises(RefusedError, match="does not match its hash"):
        require_consent(ws, "alice")
