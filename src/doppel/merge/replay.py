"""Replaying a render frame by frame with merge's own stages, for review.

A saved render is recomputed with its settings and overrides as they are *now* in the workspace:
the same pieces as a full merge (align, cached inference, :class:`~doppel.merge.stages.Compositor`
with its watermark), each frame handed over whole (plate, output, matte region, status) for
review's views and glitch scoring. It holds no compositing logic of its own.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from doppel.core.errors import InputError, WorkspaceError
from doppel.core.progress import ProgressFn, no_progress
from doppel.core.swap import Swapper
from doppel.faceset.query import FaceRecord
from doppel.faceset.workspace import Workspace
from doppel.io.video import read_frames
from doppel.merge import store
from doppel.merge.cache import InferenceCache, cache_dir
from doppel.merge.model import ModelInfo, find_model, load_model
from doppel.merge.provenance import provenance_for
from doppel.merge.settings import MergeSettings
from doppel.merge.sources import destination_faces
from doppel.merge.stages import Compositor, RunContext, StageTimer, prepare_item, run_batch

CHUNK = 32  # frames decoded and inferred together in a full replay
WARMUP = 20  # frames replayed before a requested frame so its temporal smoothing matches a full run


@dataclass
class ReplayedFrame:
    index: int
    original: np.ndarray  # uint8 (H, W, 3) RGB, the plate
    output: np.ndarray  # uint8 (H, W, 3) RGB, what merge writes (watermarked)
    region: np.ndarray | None  # bool (H, W): matte > 0.5, None when no face was swapped
    status: str  # swapped | passthrough | kept
    occlusion: float | None
    shot_cut: bool
    face: FaceRecord | None  # the destination face of this frame, if any
    settings: MergeSettings


def model_of(ws: Workspace, render: store.Render) -> ModelInfo:
    """The model a render was made with (an error once it has been deleted)."""
    if render.model_id is None:
        raise WorkspaceError(f"render {render.uid}: its model was deleted", path=ws.root)
    row = ws.conn.execute("SELECT name FROM models WHERE id = ?", (render.model_id,)).fetchone()
    if row is None:
        raise WorkspaceError(f"render {render.uid}: its model was deleted", path=ws.root)
    return find_model(ws, row["name"])


def clip_path(ws: Workspace, render: store.Render) -> Path:
    """The render's input clip (an error once it has moved or gone)."""
    row = ws.conn.execute("SELECT path FROM clips WHERE id = ?", (render.clip_id,)).fetchone()
    path = Path(row["path"]) if row is not None else None
    if path is None or not path.exists():
        raise InputError(f"render {render.uid}: its input clip is no longer there", path=path)
    return path


def _context(ws: Workspace, render: store.Render, path: Path, swapper: Swapper | None,
             identity: str | None) -> RunContext:
    model = model_of(ws, render)
    prov = provenance_for(ws, model.src_identity)
    prov.set_render(render.uid, render.watermark_payload)
    net = swapper if swapper is not None else load_model(model)
    dest = destination_faces(ws, path, identity or model.dst_identity or "", face_type=net.face_type)
    cache = InferenceCache(cache_dir(ws.renders_dir(), model.fingerprint(), dest.clip_hash, net.resolution,
                                     net.face_type))
    return RunContext(swapper=net, model=model, dest=dest, frame_settings=store.frame_settings(ws, render.id),
                    cache=cache, provenance=prov, layers=None, batch=8, stages=StageTimer(), stop=threading.Event())


def _windows(frames: Sequence[int]) -> list[tuple[int, int]]:
    """``[f - WARMUP, f]`` spans around the wanted frames, merged where they touch."""
    out: list[list[int]] = []
    for f in sorted(set(frames)):
        lo = max(0, f - WARMUP)
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = f
        else:
            out.append([lo, f])
    return [(a, b) for a, b in out]


def replay(ws: Workspace, render_id: int, frames: Sequence[int] | None = None, *, swapper: Swapper | None = None,
           identity: str | None = None, progress: ProgressFn = no_progress) -> Iterator[ReplayedFrame]:
    """Yield the render's frames (all, or just ``frames``) as merge computes them now, with the render's
    current settings and overrides; updates their ``render_frames`` rows as merge does.

    Chosen frames are computed after replaying up to ``WARMUP`` frames before each, so temporal
    smoothing matches a full run. The model runs only for frames missing from the inference cache.
    """
    render = store.get_render(ws, render_id)
    path = clip_path(ws, render)
    if frames is not None and any(f < 0 for f in frames):
        raise InputError(f"frame {min(frames)} is out of range")
    if frames is not None and not frames:
        return  # nothing asked for: don't load the model
    ctx = _context(ws, render, path, swapper, identity)
    spans = [(0, None)] if frames is None else _windows(frames)
    wanted = None if frames is None else set(frames)
    total = None if frames is None else len(wanted or ())
    done = 0
    rows: list[store.FrameRow] = []
    for lo, hi in spans:
        compositor = Compositor(ctx)
        source = read_frames(path, start=lo, stop=None if hi is None else hi + 1)
        while True:
            chunk = [fr for _, fr in zip(range(CHUNK), source, strict=False)]
            if not chunk:
                break
            items = [prepare_item(ctx, fr) for fr in chunk]
            todo = [it for it in items if it.crop is not None]
            for start in range(0, len(todo), ctx.batch):
                run_batch(ctx, todo[start:start + ctx.batch])
            for it in items:
                original = it.frame.image
                region = compositor.process(it)
                if wanted is not None and it.frame.index not in wanted:
                    continue
                assert it.output is not None
                rows.append(store.FrameRow(it.frame.index, it.status, it.occlusion, it.shot_cut))
                done += 1
                progress(done, total)
                yield ReplayedFrame(it.frame.index, original, it.output, region, it.status, it.occlusion,
                                    it.shot_cut, it.face, it.settings)
            if len(rows) >= 64:
                store.record_frames(ws, render.id, rows)
                rows.clear()
    if rows:
        store.record_frames(ws, render.id, rows)
    if wanted is not None and done < len(wanted):
        raise InputError(f"some of frames {sorted(wanted)} are beyond the end of the clip", path=path)
