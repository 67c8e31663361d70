"""Renders in the workspace: the ``renders``, ``render_frames`` and ``overrides`` tables.

A render is one merge of one model into one clip with one set of base settings (and the
overrides given with it). Its ``uid`` is random and goes into the watermark payload. Review
edits add overrides to a render; :func:`frame_settings` resolves them per frame.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from doppel.core.errors import ConfigError, WorkspaceError
from doppel.faceset.workspace import Workspace, now
from doppel.merge.settings import FrameSettings, MergeSettings, Override, validate_partial, validate_settings
from doppel.provenance.watermark import render_payload

RenderStatus = str  # 'running' | 'done' | 'failed' | 'interrupted'
FrameStatus = str  # 'swapped' | 'passthrough' | 'kept'


@dataclass(frozen=True)
class Render:
    id: int
    uid: str
    model_id: int | None
    clip_id: int
    output_path: str
    settings: MergeSettings
    settings_hash: str
    watermark_payload: int | None
    consent_hash: str | None
    status: str
    created_at: str
    finished_at: str | None


@dataclass(frozen=True)
class FrameRow:
    frame_index: int
    status: FrameStatus
    occlusion: float | None
    shot_cut: bool


def render_key(settings: MergeSettings, overrides: Sequence[tuple[int, int, dict[str, Any]]]) -> str:
    """The ``settings_hash`` of a render: its base settings and the overrides it was started with."""
    data = {"settings": settings.model_dump(), "overrides": [list(o) for o in overrides]}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _render(row: sqlite3.Row) -> Render:
    return Render(row["id"], row["uid"], row["model_id"], row["clip_id"], row["output_path"],
                  validate_settings(json.loads(row["settings"])), row["settings_hash"], row["watermark_payload"],
                  row["consent_hash"], row["status"], row["created_at"], row["finished_at"])


def get_render(ws: Workspace, render: int | str) -> Render:
    """A render by id or uid."""
    col = "id" if isinstance(render, int) else "uid"
    row = ws.conn.execute(f"SELECT * FROM renders WHERE {col} = ?", (render,)).fetchone()
    if row is None:
        raise WorkspaceError(f"no render {render!r} in this workspace", path=ws.root)
    return _render(row)


def list_renders(ws: Workspace, clip_id: int | None = None) -> list[Render]:
    sql, args = "SELECT * FROM renders", []
    if clip_id is not None:
        sql, args = sql + " WHERE clip_id = ?", [clip_id]
    return [_render(r) for r in ws.conn.execute(sql + " ORDER BY id", args)]


def find_or_create_render(ws: Workspace, *, model_id: int | None, clip_id: int, output_path: Path,
                          settings: MergeSettings, overrides: Sequence[tuple[int, int, dict[str, Any]]],
                          consent_hash: str | None) -> tuple[Render, bool]:
    """The render to (re)run: the earlier one with the same model, clip, output and settings, or a new
    one (with the given overrides stored). Returns it and whether it is being resumed."""
    key = render_key(settings, overrides)
    out = str(Path(output_path).resolve())
    row = ws.conn.execute(
        "SELECT * FROM renders WHERE model_id IS ? AND clip_id = ? AND output_path = ? AND settings_hash = ? "
        "ORDER BY id DESC LIMIT 1", (model_id, clip_id, out, key)).fetchone()
    if row is not None:
        with ws.transaction() as c:
            c.execute("UPDATE renders SET status = 'running', finished_at = NULL, consent_hash = ? WHERE id = ?",
                      (consent_hash, row["id"]))
        return get_render(ws, int(row["id"])), True
    uid = secrets.token_hex(8)
    with ws.transaction() as c:
        cur = c.execute(
            "INSERT INTO renders (uid, model_id, clip_id, output_path, settings, settings_hash, watermark_payload,"
            " consent_hash, status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'running', ?)",
            (uid, model_id, clip_id, out, settings.to_json(), key, render_payload(uid), consent_hash, now()))
        render_id = int(cur.lastrowid)  # type: ignore[arg-type]
        for first, last, changes in overrides:
            c.execute("INSERT INTO overrides (render_id, first_frame, last_frame, settings, created_at) "
                      "VALUES (?, ?, ?, ?, ?)", (render_id, first, last, json.dumps(changes, sort_keys=True), now()))
    return get_render(ws, render_id), False


def restart_render(ws: Workspace, render_id: int, *, model_id: int | None, clip_id: int,
                   consent_hash: str | None) -> Render:
    """Mark an existing render as running again, after checking it is of this model and clip."""
    render = get_render(ws, render_id)
    if render.clip_id != clip_id or render.model_id != model_id:
        raise ConfigError(f"render {render.uid} was made from another clip or model; start a new merge instead")
    with ws.transaction() as c:
        c.execute("UPDATE renders SET status = 'running', finished_at = NULL, consent_hash = ? WHERE id = ?",
                  (consent_hash, render_id))
    return get_render(ws, render_id)


def finish_render(ws: Workspace, render_id: int, status: RenderStatus) -> None:
    with ws.transaction() as c:
        c.execute("UPDATE renders SET status = ?, finished_at = ? WHERE id = ?", (status, now(), render_id))


def record_frames(ws: Workspace, render_id: int, rows: Iterable[FrameRow]) -> None:
    with ws.transaction() as c:
        c.executemany(
            "INSERT OR REPLACE INTO render_frames (render_id, frame_index, status, occlusion, shot_cut) "
            "VALUES (?, ?, ?, ?, ?)",
            [(render_id, r.frame_index, r.status, r.occlusion, int(r.shot_cut)) for r in rows])


def frames_of(ws: Workspace, render_id: int) -> list[FrameRow]:
    return [FrameRow(r["frame_index"], r["status"], r["occlusion"], bool(r["shot_cut"])) for r in ws.conn.execute(
        "SELECT * FROM render_frames WHERE render_id = ? ORDER BY frame_index", (render_id,))]


# -- overrides (what the review app edits) ---------------------------------------------------------
def add_override(ws: Workspace, render_id: int, first: int, last: int, changes: dict[str, Any]) -> int:
    """Store a validated partial settings change for frames ``first..last`` (inclusive); returns its id."""
    if first < 0 or last < first:
        raise ConfigError(f"override frame range {first}..{last}: expected 0 <= first <= last")
    get_render(ws, render_id)
    clean = validate_partial(changes)
    with ws.transaction() as c:
        cur = c.execute("INSERT INTO overrides (render_id, first_frame, last_frame, settings, created_at) "
                        "VALUES (?, ?, ?, ?, ?)", (render_id, first, last, json.dumps(clean, sort_keys=True), now()))
    return int(cur.lastrowid)  # type: ignore[arg-type]


def remove_override(ws: Workspace, override_id: int) -> None:
    with ws.transaction() as c:
        if c.execute("DELETE FROM overrides WHERE id = ?", (override_id,)).rowcount == 0:
            raise WorkspaceError(f"no override {override_id} in this workspace", path=ws.root)


def overrides_of(ws: Workspace, render_id: int) -> list[Override]:
    return [Override(r["id"], r["first_frame"], r["last_frame"], validate_partial(json.loads(r["settings"])))
            for r in ws.conn.execute("SELECT * FROM overrides WHERE render_id = ? ORDER BY id", (render_id,))]


def frame_settings(ws: Workspace, render_id: int) -> FrameSettings:
    """Per-frame settings of a render: its base settings with its overrides applied."""
    render = get_render(ws, render_id)
    return FrameSettings(render.settings, overrides_of(ws, render_id))
