"""What the review app calls: re-render chosen frames of a render, and re-encode a whole render.

Both use the render's settings and its overrides as they are *now* in the workspace, and the
inference cache (the model runs only for frames never inferred before).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from doppel.core.progress import ProgressFn, no_progress
from doppel.core.swap import Swapper
from doppel.faceset.workspace import Workspace
from doppel.merge import store
from doppel.merge.model import load_model
from doppel.merge.pipeline import MergeReport, MergeRequest, merge
from doppel.merge.replay import clip_path, model_of, replay


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
    frames' rows in ``render_frames``."""
    return {f.index: RenderedFrame(f.index, f.output, f.status, f.occlusion, f.shot_cut)
            for f in replay(ws, render_id, frames, swapper=swapper, identity=identity)}


def rerender(ws: Workspace, render_id: int, *, progress: ProgressFn = no_progress,
             swapper: Swapper | None = None, layers: Path | None = None) -> MergeReport:
    """Re-encode a whole render with its current overrides (same uid, watermark and output path)."""
    render = store.get_render(ws, render_id)
    model = model_of(ws, render)
    request = MergeRequest(input=clip_path(ws, render), output=Path(render.output_path), model=model.name,
                           settings=render.settings, layers=layers)
    if swapper is None:
        swapper = load_model(model)
    return merge(ws, request, progress=progress, swapper=swapper, render_id=render.id)
