"""Finding the model to merge with: by name in this workspace, with clear errors otherwise."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from doppel.core.errors import InputError, WorkspaceError
from doppel.core.swap import Swapper
from doppel.faceset.workspace import DB_NAME, Workspace


@dataclass(frozen=True)
class ModelInfo:
    """A row of the ``models`` table, with identity names resolved and the folder made absolute."""

    id: int
    name: str
    path: Path
    arch: str
    preset: str | None
    resolution: int
    face_type: str
    src_identity: str | None
    dst_identity: str | None
    step: int
    updated_at: str

    def fingerprint(self) -> str:
        """Changes whenever the model's weights may have changed (for the inference cache)."""
        parts = [self.name, str(self.id), str(self.step), self.updated_at, str(self.resolution), self.face_type]
        if self.path.is_dir():
            for f in sorted(self.path.iterdir()):
                if f.is_file():
                    st = f.stat()
                    parts.append(f"{f.name}:{st.st_size}:{st.st_mtime_ns}")
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _owner_workspace(path: Path) -> Path | None:
    for parent in [path, *path.parents]:
        if (parent / DB_NAME).is_file():
            return parent
    return None


def find_model(ws: Workspace, name: str) -> ModelInfo:
    """The model called ``name`` (or stored in folder ``name``) in this workspace.

    Raises :class:`WorkspaceError` naming the known models when there is none, and saying so when
    the folder given belongs to another workspace.
    """
    sql = ("SELECT m.*, s.name AS src_name, d.name AS dst_name FROM models m "
           "LEFT JOIN identities s ON s.id = m.src_identity_id LEFT JOIN identities d ON d.id = m.dst_identity_id ")
    row = ws.conn.execute(sql + "WHERE m.name = ?", (name,)).fetchone()
    if row is None and ("/" in name or Path(name).is_dir()):
        candidate = Path(name).resolve()
        inside = candidate.is_relative_to(ws.root.resolve())
        if inside:
            row = ws.conn.execute(sql + "WHERE m.path = ?", (ws.rel(candidate),)).fetchone()
        if row is None and candidate.exists() and not inside:
            owner = _owner_workspace(candidate)
            where = f"workspace {owner}" if owner else "no workspace"
            raise WorkspaceError(f"model {name!r} belongs to another workspace ({where}), not {ws.root}; "
                                 "merge inside the workspace that trained it", path=candidate)
    if row is None:
        known = ", ".join(r[0] for r in ws.conn.execute("SELECT name FROM models ORDER BY name")) or "none yet"
        raise WorkspaceError(f"no model {name!r} in this workspace (known: {known}); train one with "
                             "`doppel train`", path=ws.root)
    info = ModelInfo(row["id"], row["name"], ws.abs(row["path"]), row["arch"], row["preset"], row["resolution"],
                     row["face_type"], row["src_name"], row["dst_name"], row["step"], row["updated_at"])
    if not info.path.is_dir():
        raise WorkspaceError(f"model {name!r} is registered but its folder is missing", path=info.path)
    return info


def load_model(info: ModelInfo, runtime: str = "auto") -> Swapper:
    """Load the trained network of ``info`` as a :class:`Swapper` (PyTorch or ONNX Runtime)."""
    from doppel.train.swapper import load_swapper  # the training package owns model files

    swapper = load_swapper(info.path, runtime=runtime)
    if swapper.resolution != info.resolution or swapper.face_type != info.face_type:
        raise InputError(f"model files say {swapper.resolution} px {swapper.face_type}, the workspace says "
                         f"{info.resolution} px {info.face_type}", path=info.path)
    return swapper
