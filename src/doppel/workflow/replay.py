"""Replaying a render frame by frame with merge's own stages, for review.

A saved render is recomputed with its settings and overrides as they are *now* in the workspace:
the same pieces as a full merge (align, cached inference, :class:`~doppel.merge.stages.Compositor`
with its watermark), each frame handed over whole (plate, output, matte, status) for
review's views and glitch scoring. It holds no compositing logic of its own.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from doppel.core.errors import InputError
from doppel.core.progress import ProgressFn, no_progress
from doppel.core.swap import Swapper
from doppel.io.video import read_frames
from doppel.merge.settings import MergeSettings
from doppel.merge.stages import Compositor, RunContext, infer_items, prepare_item
from doppel.store import Workspace
from doppel.store.records import FaceRecord, FrameRow, RenderRecord
from doppel.workflow.extract import destination_faces
from doppel.workflow.merge import add_sources, frame_settings, provenance_for, run_context, segmenter_if_needed
from doppel.workflow.models import load_model, model_of, others_of

CHUNK = 32  # frames decoded and inferred together in a full replay
WARMUP = 20  # frames replayed before a requested frame so its temporal smoothing matches a full run
FLUSH = 64  # frame rows written per transaction


@dataclass
class PersonFrame:
    """Another person's face on a replayed frame of a render that swaps several people."""

    model: str  # the model that swapped this person
    face: FaceRecord | None  # this person's destination face on the frame, if any
    matte: np.ndarray | None  # uint8 (H, W), this person's matte, None when not swapped
    status: str
    occlusion: float | None = None
    uncertainty: float | None = None
    leak: float | None = None


@dataclass
class ReplayedFrame:
    index: int
    original: np.ndarray  # uint8 (H, W, 3) RGB, the plate
    output: np.ndarray  # uint8 (H, W, 3) RGB, what merge writes (watermarked)
    matte: np.ndarray | None  # uint8 (H, W): how much of the swap each pixel shows (255 = all), None when none
    status: str  # swapped | passthrough | kept
    occlusion: float | None
    shot_cut: bool
    face: FaceRecord | None  # the destination face of this frame, if any
    settings: MergeSettings
    uncertainty: float | None = None  # the segmenter's doubt inside the face (occlusion=segment)
    leak: float | None = None  # share of the face the swap covers where the plate shows something else
    others: list[PersonFrame] = field(default_factory=list)  # the other people a render swaps, in order

    @property
    def mattes(self) -> np.ndarray | None:
        """Every swapped person's matte in one (the pixel-wise max): what the frame shows of any swap."""
        all_ = [m for m in (self.matte, *(o.matte for o in self.others)) if m is not None]
        if len(all_) <= 1:
            return all_[0] if all_ else None
        return np.maximum.reduce(all_)

    def person(self, k: int) -> ReplayedFrame:
        """The frame seen as person ``k``'s (0: the render's own model): the same plate and output, with
        that person's face, matte and scores."""
        if k == 0:
            return self
        o = self.others[k - 1]
        return replace(self, face=o.face, matte=o.matte, status=o.status, occlusion=o.occlusion,
                       uncertainty=o.uncertainty, leak=o.leak, others=[])


def _context(ws: Workspace, render: RenderRecord, swapper: Swapper | None, identity: str | None) -> RunContext:
    path = ws.clips.path_of(render.clip_id, what=f"render {render.uid}")
    model = model_of(ws, render)
    prov = provenance_for(ws, model)
    net = swapper if swapper is not None else load_model(model)
    dest = destination_faces(ws, path, identity or model.dst_identity or "", face_type=net.face_type)
    others = []
    for m, ident in others_of(ws, render):  # the other people the render swaps, as merge composited them
        other = load_model(m)
        others.append((m, destination_faces(ws, path, ident, face_type=other.face_type), other))
    add_sources(ws, prov, [m for m, _, _ in others])
    segmenter = segmenter_if_needed(ws, frame_settings(ws, render))
    return run_context(ws, render, model, dest, net, prov, segmenter=segmenter, others=others)


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
    current settings and overrides; updates their frame rows as merge does.

    Chosen frames are computed after replaying up to ``WARMUP`` frames before each, so temporal
    smoothing matches a full run. The model runs only for frames missing from the inference cache.
    """
    render = ws.renders.get(render_id)
    path = ws.clips.path_of(render.clip_id, what=f"render {render.uid}")
    if frames is not None and any(f < 0 for f in frames):
        raise InputError(f"frame {min(frames)} is out of range")
    if frames is not None and not frames:
        return  # nothing asked for: don't load the model
    ctx = _context(ws, render, swapper, identity)
    spans = [(0, None)] if frames is None else _windows(frames)
    wanted = None if frames is None else set(frames)
    total = None if frames is None else len(wanted or ())
    done = 0
    rows: list[FrameRow] = []
    for lo, hi in spans:
        compositor = Compositor(ctx, person_mattes=bool(ctx.others))
        source = read_frames(path, start=lo, stop=None if hi is None else hi + 1)
        while True:
            chunk = [fr for _, fr in zip(range(CHUNK), source, strict=False)]
            if not chunk:
                break
            items = [prepare_item(ctx, fr) for fr in chunk]
            infer_items(ctx, items)
            for it in items:
                original = it.frame.image
                matte = compositor.process(it)
                if wanted is not None and it.frame.index not in wanted:
                    continue
                assert it.output is not None
                rows.append(FrameRow(it.frame.index, it.status, it.occlusion, it.shot_cut))
                done += 1
                progress(done, total)
                others = [PersonFrame(ctx.person(o.person).model.name, o.face, o.matte, o.status, o.occlusion,
                                      o.uncertainty, o.leak) for o in it.others]
                yield ReplayedFrame(it.frame.index, original, it.output, matte, it.status, it.occlusion,
                                    it.shot_cut, it.face, it.settings, it.uncertainty, it.leak, others)
            if len(rows) >= FLUSH:
                ws.renders.record_frames(render.id, rows)
                rows = []
    if rows:
        ws.renders.record_frames(render.id, rows)
    if wanted is not None and done < len(wanted):
        raise InputError(f"some of frames {sorted(wanted)} are beyond the end of the clip", path=path)


@dataclass(frozen=True)
class RenderedFrame:
    index: int
    image: np.ndarray  # uint8 (H, W, 3) RGB, watermarked like every frame merge writes
    status: str  # swapped | passthrough | kept
    occlusion: float | None
    shot_cut: bool


def render_frames(ws: Workspace, render_id: int, frames: list[int], *, swapper: Swapper | None = None,
                  identity: str | None = None) -> dict[int, RenderedFrame]:
    """Re-render ``frames`` of a render with its current settings and overrides (e.g. after an edit in
    review), each after a warm-up so colour and matte smoothing match a full merge. Updates those
    frames' rows."""
    return {f.index: RenderedFrame(f.index, f.output, f.status, f.occlusion, f.shot_cut)
            for f in replay(ws, render_id, frames, swapper=swapper, identity=identity)}
