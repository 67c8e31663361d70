"""What to compare for a render of the workspace: its output, its clip, its model's identities."""

from __future__ import annotations

from pathlib import Path

from doppel.core.errors import InputError, WorkspaceError
from doppel.eval.pipeline import EvalRequest
from doppel.faceset.workspace import Workspace
from doppel.merge import store


def request_for_render(ws: Workspace, render: str, *, src: str | None = None, dst: str | None = None,
                       embed_every: int | None = None) -> EvalRequest:
    """An :class:`EvalRequest` for render ``render`` (its id or uid): the clip it was made from, its
    output, the model's source and destination (unless given), its swapped frames and settings."""
    r = store.get_render(ws, int(render) if render.isdigit() else render)
    if r.status != "done":
        raise WorkspaceError(f"render {r.uid} is {r.status}, not done; finish the merge first", path=ws.root)
    clip = ws.conn.execute("SELECT path FROM clips WHERE id = ?", (r.clip_id,)).fetchone()
    if clip is None:
        raise WorkspaceError(f"render {r.uid}: its clip is no longer in the workspace", path=ws.root)
    model = ws.conn.execute(
        "SELECT s.name AS src, d.name AS dst FROM models m LEFT JOIN identities s ON s.id = m.src_identity_id "
        "LEFT JOIN identities d ON d.id = m.dst_identity_id WHERE m.id = ?", (r.model_id,)).fetchone()
    src = src or (model["src"] if model is not None else None)
    dst = dst or (model["dst"] if model is not None else None)
    if src is None:
        raise WorkspaceError(f"render {r.uid}: its model is gone, so its source is unknown; pass --src",
                             path=ws.root)
    original, output = Path(clip["path"]), Path(r.output_path)
    for path in (original, output):
        if not path.exists():
            raise InputError(f"render {r.uid} needs this file, which is missing", path=path)
    swapped = frozenset(f.frame_index for f in store.frames_of(ws, r.id) if f.status == "swapped")
    return EvalRequest(original=original, merged=output, src=src, dst=dst, render=r.uid, swapped=swapped,
                       settings=r.settings, embed_every=embed_every)
