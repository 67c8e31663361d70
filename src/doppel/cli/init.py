"""`doppel init`: create a workspace."""

from __future__ import annotations

from pathlib import Path

import typer

from doppel.cli.common import JsonOpt, console, emit_json
from doppel.store import SUBDIRS
from doppel.workflow.workspace import create_workspace


def init(
    workspace: Path = typer.Argument(..., help="Folder to create the workspace in (new or empty)."),
    json_out: bool = JsonOpt,
) -> None:
    """Create a workspace: a SQLite database and folders for face sets, models and renders."""
    with create_workspace(workspace) as ws:
        report = {"workspace": str(ws.root.resolve()), "schema_version": ws.schema_version,
                  "folders": list(SUBDIRS), "signing_identity": str(ws.keys_dir().resolve())}
    if json_out:
        emit_json(report)
    else:
        console.print(f"created workspace {report['workspace']} (schema v{report['schema_version']})")
        console.print(f"content-credentials signing key and certificate: {report['signing_identity']} "
                      "(its README.txt says how to use your studio's own)")
