"""Finding a render by the reference people type: its uid, its number, or a unique prefix of its uid."""

from __future__ import annotations

from doppel.core.errors import WorkspaceError
from doppel.store import Workspace
from doppel.store.records import RenderRecord


def find_render(ws: Workspace, ref: str) -> RenderRecord:
    """The render whose uid is ``ref``, else whose number is ``ref``, else whose uid alone starts with it."""
    renders = ws.renders.all()
    ref = ref.strip().lower()
    found = [r for r in renders if r.uid == ref]
    if not found and ref.isdigit():
        found = [r for r in renders if r.id == int(ref)]
    if not found and ref:
        found = [r for r in renders if r.uid.startswith(ref)]
    if len(found) != 1:
        known = ", ".join(r.uid for r in renders) or "none yet"
        what = "no render" if not found else "more than one render"
        raise WorkspaceError(f"{what} matches {ref!r} (renders: {known})", path=ws.root)
    return found[0]
