"""Finding a trained model by the name (or folder) people type, and loading it for merging."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from doppel.core.errors import InputError, WorkspaceError
from doppel.core.swap import Swapper
from doppel.store import Workspace
from doppel.store.records import ModelRecord, RenderRecord
from doppel.store.workspace import owner_workspace

if TYPE_CHECKING:
    from doppel.train.swapper import Runtime


def find_model(ws: Workspace, name: str) -> ModelRecord:
    """The model called ``name`` (or stored in folder ``name``) in this workspace.

    Raises :class:`WorkspaceError` naming the known models when there is none, and saying so when
    the folder given belongs to another workspace.
    """
    model = ws.models.get(name)
    if model is None and ("/" in name or Path(name).is_dir()):
        candidate = Path(name).resolve()
        inside = candidate.is_relative_to(ws.root.resolve())
        if inside:
            model = ws.models.by_folder(ws.rel(candidate))
        if model is None and candidate.exists() and not inside:
            owner = owner_workspace(candidate)
            where = f"workspace {owner}" if owner else "no workspace"
            raise WorkspaceError(f"model {name!r} belongs to another workspace ({where}), not {ws.root}; "
                                 "merge inside the workspace that trained it", path=candidate)
    if model is None:
        known = ", ".join(ws.models.names()) or "none yet"
        raise WorkspaceError(f"no model {name!r} in this workspace (known: {known}); train one with "
                             "`doppel train`", path=ws.root)
    if not model.path.is_dir():
        raise WorkspaceError(f"model {name!r} is registered but its folder is missing", path=model.path)
    return model


def model_of(ws: Workspace, render: RenderRecord) -> ModelRecord:
    """The model a render was made with (an error once it has been deleted)."""
    model = ws.models.by_id(render.model_id) if render.model_id is not None else None
    if model is None:
        raise WorkspaceError(f"render {render.uid}: its model was deleted", path=ws.root)
    return find_model(ws, model.name)


def others_of(ws: Workspace, render: RenderRecord) -> list[tuple[ModelRecord, str]]:
    """The models (and destination people) a render swaps after its own model's, in order."""
    out = []
    for model_id, identity in ws.renders.others(render.id):
        model = ws.models.by_id(model_id) if model_id is not None else None
        if model is None:
            raise WorkspaceError(f"render {render.uid}: the model for {identity!r} was deleted", path=ws.root)
        out.append((find_model(ws, model.name), identity))
    return out


def load_model(model: ModelRecord, runtime: Runtime = "auto") -> Swapper:
    """Load the trained network of ``model`` as a :class:`Swapper` (PyTorch or ONNX Runtime)."""
    from doppel.train.swapper import load_swapper  # torch loads only when a model is needed

    swapper = load_swapper(model.path, runtime=runtime)
    if swapper.resolution != model.resolution or swapper.face_type != model.face_type:
        raise InputError(f"model files say {swapper.resolution} px {swapper.face_type}, the workspace says "
                         f"{model.resolution} px {model.face_type}", path=model.path)
    return swapper
