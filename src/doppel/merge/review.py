"""What the review app calls: re-render chosen frames of a render, and re-encode a whole render.

Both use the render's settings and its overrides as they are *now* in the workspace, and the
inference cache (the model runs only for frames never inferred before).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from doppel.core.errors import InputError, WorkspaceError
from doppel.core.progress import ProgressFn, no_progress
from doppel.core.swap import Swapper
from doppel.faceset.workspace import Workspace
from doppel.io.video import read_frames
from doppel.merge import store
from doppel.merge.cache import InferenceCache, cache_dir
from doppel.merge.model import ModelInfo, find_model, load_model
from doppel.merge.pipeline import MergeReport, MergeRequest, merge
from doppel.merge.provenance import provenance_for
from doppel.merge.sources import destination_faces
from doppel.merge.stages import Compositor, RunContext, StageTimer, WorkItem, prepare_item, run_batch

WARMUP = 20  # frames replayed before a requested frame so its temporal smoothing matches a full run


@dataclass(frozen=True)
class RenderedFrame:
    index: int
    image: np.ndarray  # uint8 (H, W, 3) RGB, watermarked like every frame merge writes
    status: str  # swapped | passthrough | kept
    occlusion: float | None
    shot_cut: bool


def _model_of(ws: Workspace, render: store.Render) -> ModelInfo:
    if render.model_id is None:
        raise WorkspaceError(f"render {render.uid}: its model was deleted", path=ws.root)
    row = ws.conn.execute("SELECT name FROM models WHERE id = ?", (render.model_id,)).fetchone()
    if row is None:
        raise WorkspaceError(f"render {render.uid}: its model was deleted", path=ws.root)
    return find_model(ws, row["name"])


def _clip_path(ws: Workspace, render: store.Render) -> Path:
    row = ws.conn.execute("SELECT path FROM clips WHERE id = ?", (render.clip_id,)).fetchone()
    path = Path(row["path"]) if row is not None else None
    if path is None or not path.exists():
        raise InputError(f"render {render.uid}: its input clip is no longer there", path=path)
    return path


def render_frames(ws: Workspace, render_id: int, frames: list[int], *, swapper: Swapper | None = None,
                  identity: str | None = None) -> dict[int, RenderedFrame]:
    """Re-render ``frames`` of a render with its current settings and overrides (e.g. after an edit in
    review). Each frame is computed after replaying up to :data:`WARMUP` frames before it, so colour
    and matte smoothing match what a full merge gives. Updates those frames' rows in ``render_frames``.
    """
    render = store.get_render(ws, render_id)
    model = _model_of(ws, render)
    path = _clip_path(ws, render)
    wanted = sorted(set(frames))
    if not wanted:
        return {}
    if wanted[0] < 0:
        raise InputError(f"frame {wanted[0]} is out of range")
    prov = provenance_for(ws, model.src_identity)
    prov.set_render(render.uid, render.watermark_payload)
    net = swapper if swapper is not None else load_model(model)
    dest = destination_faces(ws, path, identity or model.dst_identity or "", face_type=net.face_type)
    ctx = RunContext(
        swapper=net, model=model, dest=dest, frame_settings=store.frame_settings(ws, render.id),
        cache=InferenceCache(cache_dir(ws.renders_dir(), model.fingerprint(), dest.clip_hash, net.resolution,
                                       net.face_type)),
        provenance=prov, layers=None, batch=8, stages=StageTimer(), stop=threading.Event())
    # windows of frames to replay: [f - WARMUP, f], merged where they overlap
    windows: list[list[int]] = []
    for f in wanted:
        lo = max(0, f - WARMUP)
        if windows and lo <= windows[-1][1] + 1:
            windows[-1][1] = f
        else:
            windows.append([lo, f])
    out: dict[int, RenderedFrame] = {}
    for lo, hi in windows:
        items = [prepare_item(ctx, fr) for fr in read_frames(path, start=lo, stop=hi + 1)]
        todo = [it for it in items if it.crop is not None]
        for start in range(0, len(todo), ctx.batch):
            run_batch(ctx, todo[start:start + ctx.batch])
        compositor = Compositor(ctx)
        for it in items:
            compositor.process(it)
            if it.frame.index in wanted:
                out[it.frame.index] = _rendered(it)
    missing = [f for f in wanted if f not in out]
    if missing:
        raise InputError(f"frames {missing} are beyond the end of the clip", path=path)
    store.record_frames(ws, render.id, [store.FrameRow(r.index, r.status, r.occlusion, r.shot_cut)
                                        for r in out.values()])
    return out


def _rendered(item: WorkItem) -> RenderedFrame:
    assert item.output is not None
    return RenderedFrame(item.frame.index, item.output, item.status, item.occlusion, item.shot_cut)


def rerender(ws: Workspace, render_id: int, *, progress: ProgressFn = no_progress,
             swapper: Swapper | None = None, layers: Path | None = None) -> MergeReport:
    """Re-encode a whole render with its current overrides (same uid, watermark and output path)."""
    render = store.get_render(ws, render_id)
    model = _model_of(ws, render)
    request = MergeRequest(input=_clip_path(ws, render), output=Path(render.output_path), model=model.name,
                           settings=render.settings, layers=layers)
    if swapper is None:
        swapper = load_model(model)
    return merge(ws, request, progress=progress, swapper=swapper, render_id=render.id)
