"""`doppel consent add/list`: record who agreed to their likeness being used as a source."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer
from rich.markup import escape

from doppel.cli.common import JsonOpt, console, emit_json
from doppel.provenance.consent import BASES, add_consent, list_consents
from doppel.store import Workspace

app = typer.Typer(name="consent", help="Consent records for source identities.", no_args_is_help=True)

Basis = Enum("Basis", {name.replace("-", "_"): name for name in BASES}, type=str)  # type: ignore[misc]


_BASIS_HELP = "On what basis: " + "; ".join(f"{k}: {v}" for k, v in BASES.items())


def add(
    workspace: Path = typer.Argument(..., help="The workspace."),
    identity: str = typer.Option(..., "--identity", help="The identity (face set name) the consent covers."),
    subject: str = typer.Option(..., "--subject", help="Who agreed: the person (or rights holder) by name."),
    scope: str = typer.Option(..., "--scope", help="What they agreed to (production, use, period)."),
    basis: Basis = typer.Option(..., "--basis", help=_BASIS_HELP),
    evidence: Path | None = typer.Option(None, "--evidence", help="A file proving it (signed release, ...); "
                                                                  "only its name and SHA-256 are recorded."),
    json_out: bool = JsonOpt,
) -> None:
    """Record consent for an identity; training and merging with it are refused without one."""
    with Workspace.open(workspace) as ws:
        record = add_consent(ws, identity, subject, scope, basis.value, evidence)
    if json_out:
        emit_json(record.to_dict())
    else:
        console.print(escape(f"consent recorded for {record.identity!r} ({record.basis}); "
                             f"record hash {record.record_hash}"))


def list_(
    workspace: Path = typer.Argument(..., help="The workspace."),
    identity: str | None = typer.Option(None, "--identity", help="Only this identity's records."),
    json_out: bool = JsonOpt,
) -> None:
    """List consent records, oldest first."""
    with Workspace.open(workspace) as ws:
        records = list_consents(ws, identity)
    if json_out:
        emit_json([r.to_dict() for r in records])
        return
    if not records:
        console.print("no consent records" + (f" for {identity!r}" if identity else ""))
        return
    for r in records:
        evidence = f", evidence {r.evidence_name} sha256 {(r.evidence_sha256 or '')[:12]}…" if r.evidence_name else ""
        console.print(escape(f"{r.created_at}  {r.identity}: {r.subject} — {r.scope} [{r.basis}{evidence}] "
                             f"hash {r.record_hash[:16]}…"))
