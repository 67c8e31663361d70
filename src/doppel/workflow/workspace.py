"""Making a workspace: the store's folders and database, and the signing identity its outputs carry."""

from __future__ import annotations

from pathlib import Path

from doppel.provenance.keys import create_workspace_keys
from doppel.store import Workspace


def create_workspace(root: str | Path) -> Workspace:
    """A new workspace at ``root`` (a new or empty folder), with a fresh content-credentials signing
    identity in ``keys/`` (``WS/keys/README.txt`` says how a studio substitutes its own)."""
    ws = Workspace.init(root)
    create_workspace_keys(ws.keys_dir())
    return ws
