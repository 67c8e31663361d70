"""Analysing a render for review: replay it once, cache its frames and thumbnails, measure and score it.

:func:`analyse` does the whole render (what ``doppel glitches`` and the review app run once);
:func:`refresh` re-renders chosen frames after an edit and rescores the render; :func:`dirty_frames`
says which frames' settings changed since they were last rendered.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from doppel.core.errors import WorkspaceError
from doppel.core.progress import ProgressFn, no_progress
from doppel.core.swap import Swapper
from doppel.extract.backends import embedder, landmarker
from doppel.io.video import probe
from doppel.ops import face as geometry
from doppel.review import features as ft
from doppel.review.cache import CACHE_VERSION, PER_SHEET, SHEET_COLUMNS, ReviewCache
from doppel.review.glitches import FLAG_SCORE, Glitch, Measure, combine, ranked, score, store_scores
from doppel.store import Workspace
from doppel.store.records import FaceRecord, RenderRecord
from doppel.workflow.extract import identity_embedding
from doppel.workflow.merge import frame_settings
from doppel.workflow.models import model_of, others_of
from doppel.workflow.replay import ReplayedFrame, replay

log = logging.getLogger(__name__)

RETRAIN_MINUTES = 3.0  # default budget of review's "retrain mask"
IDENTITY_BUDGET = 250  # identity embeddings per render (~80 ms each); frames between are interpolated
LANDMARKER = "dlib-68"
EMBEDDER = "dlib-resnet"


@dataclass
class AnalysisReport:
    render_uid: str
    frames: int
    swapped: int
    flagged: int
    identity_reference: str  # "source" (the model's source faces) or "render" (median of the swaps)
    identity_stride: int
    seconds: float
    top: list[dict[str, Any]] = field(default_factory=list)
    people: list[str] = field(default_factory=list)  # the models whose faces were measured, render's own first

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Meter:
    """Measures frames: landmarks on plate and swap, eye/mouth/gaze, colour, identity, face-space mask."""

    def __init__(self) -> None:
        self.landmarker = landmarker(LANDMARKER)
        self.embedder = embedder(EMBEDDER)

    def measure(self, fr: ReplayedFrame, with_identity: bool) -> tuple[Measure, np.ndarray, np.ndarray | None]:
        """The frame's :class:`Measure`, its crop-space mask and (if asked) the swap's identity embedding."""
        m = Measure(fr.index, fr.status, fr.shot_cut, fr.occlusion, settings_hash=fr.settings.hash(),
                    segment=fr.uncertainty, leak=fr.leak)
        mask = np.zeros((ft.MASK_SIZE, ft.MASK_SIZE), np.uint8)
        face = fr.face
        if face is None:
            return m, mask, None
        m.landmark_score = face.landmark_score
        if fr.status != "swapped":
            return m, mask, None
        box = tuple(float(v) for v in face.bbox)
        lm_plate = self.landmarker.landmarks(fr.original, box)  # type: ignore[arg-type]
        lm_swap = self.landmarker.landmarks(fr.output, box)  # type: ignore[arg-type]
        m.alignment = ft.landmark_shift(lm_plate, lm_swap)
        m.mouth = float(abs(geometry.mouth_openness(lm_swap) - geometry.mouth_openness(lm_plate)))
        m.eyes = float(np.abs(geometry.eye_openness(lm_swap) - geometry.eye_openness(lm_plate)).mean())
        g_plate, g_swap = ft.gaze(fr.original, lm_plate), ft.gaze(fr.output, lm_swap)
        if g_plate is not None and g_swap is not None:
            m.gaze = float(np.linalg.norm(g_swap - g_plate, axis=1).mean())
        if fr.matte is not None:
            region = ft.matte_region(fr.matte)
            offset = ft.colour_offset(fr.original, fr.output, region)
            m.colour = None if offset is None else [round(float(v), 4) for v in offset]
            mask = ft.crop_mask(region, face.transform, face.size)
        vec = self.embedder.embed(fr.output, lm_swap) if with_identity else None
        return m, mask, vec


JUMP_WINDOW = 4  # neighbours on each side whose median landmarks a frame's alignment is compared with


def _jumps(dest: dict[int, FaceRecord], measures: list[Measure]) -> None:
    """How far each frame's alignment landmarks sit from the median of its neighbours' (same shot, up to
    :data:`JUMP_WINDOW` each side), over the interocular distance. A median, not a second difference,
    so that every frame of a short run of bad fits stands out, not only its edges."""
    shot = np.cumsum([1 if m.shot_cut else 0 for m in measures])
    n = len(measures)
    for m in measures:
        i = m.index
        face = dest.get(i)
        if face is None or m.status != "swapped":
            continue
        nb = [dest[j].landmarks_smooth for j in range(max(0, i - JUMP_WINDOW), min(n, i + JUMP_WINDOW + 1))
              if j != i and j in dest and shot[j] == shot[i]]
        if len(nb) >= 2:
            m.landmark_jump = ft.landmark_shift(face.landmarks_smooth, np.median(np.stack(nb), axis=0))


def _identity_distances(measures: list[Measure], vectors: dict[int, np.ndarray],
                        reference: np.ndarray | None) -> tuple[str, np.ndarray | None]:
    """Fill ``identity`` (distance to ``reference``, or to the median swap when there is none); returns
    which reference was used and the vector."""
    kind = "source"
    if reference is None:
        if not vectors:
            return "none", None
        reference, kind = np.median(np.stack(list(vectors.values())), axis=0).astype(np.float32), "render"
    for i, vec in vectors.items():
        measures[i].identity = round(float(np.linalg.norm(vec - reference)), 5)
    return kind, reference


def _summary(render: RenderRecord, info: dict[str, Any], glitches: Sequence[Glitch], version: int) -> dict[str, Any]:
    """What the web page loads: one compact JSON per render."""
    status_code = {"swapped": "s", "passthrough": "p", "kept": "k"}
    return {
        "version": CACHE_VERSION, "uid": render.uid, "revision": version, **info,
        "sheet": {"per_sheet": PER_SHEET, "columns": SHEET_COLUMNS},
        "score": [g.score for g in glitches],
        "flagged": [g.frame for g in glitches if g.flagged],
        "cuts": [g.frame for g in glitches if g.shot_cut],
        "frame_status": "".join(status_code.get(g.status, "p") for g in glitches),
        "flag_score": FLAG_SCORE,
    }


@dataclass
class _Person:
    """One swapped person's measuring state: the render's own model is person 0, a multi-person render's
    other models follow in compositing order."""

    model: str
    reference: np.ndarray | None
    stride: int
    measures: list[Measure] = field(default_factory=list)
    masks: list[np.ndarray] = field(default_factory=list)
    vectors: dict[int, np.ndarray] = field(default_factory=dict)
    dest: dict[int, FaceRecord] = field(default_factory=dict)
    seen: int = 0  # swapped frames so far (identity is embedded on every ``stride``-th)
    kind: str = "source"

    def cached(self) -> dict[str, Any]:
        return {"model": self.model, "identity_reference": self.kind, "identity_stride": self.stride,
                "reference": None if self.reference is None else [float(v) for v in self.reference],
                "measures": [asdict(m) for m in self.measures]}


def _people(ws: Workspace, render: RenderRecord, identity_budget: int) -> list[_Person]:
    out = []
    for model, ident in [(model_of(ws, render), None), *others_of(ws, render)]:
        ident = ident or model.dst_identity
        reference = identity_embedding(ws, model.src_identity) if model.src_identity else None
        n_faces = ws.faces.count(ident, render.clip_id) if ident else 0
        out.append(_Person(model.name, reference, max(1, math.ceil(n_faces / max(1, identity_budget)))))
    return out


def _views(fr: ReplayedFrame, people: list[_Person], render: RenderRecord, ws: Workspace) -> list[ReplayedFrame]:
    """The frame as each person's, in ``people``'s order."""
    if len(fr.others) + 1 != len(people):
        raise WorkspaceError(f"render {render.uid}: frame {fr.index} has {len(fr.others) + 1} people, "
                             f"the render {len(people)}", path=ws.root)
    return [fr.person(k) for k in range(len(people))]


def _finish(ws: Workspace, cache: ReviewCache, render: RenderRecord, people: list[_Person],
            info: dict[str, Any], revision: int) -> list[Glitch]:
    per_person = []
    for k, p in enumerate(people):
        masks = np.stack(p.masks)
        per_person.append((p.model, score(p.measures, masks)))
        cache.write_masks(masks, person=k)
    glitches = combine(per_person)
    store_scores(ws, render.id, glitches)
    finished = ws.renders.get(render.id).finished_at  # what the cache matches (see :func:`is_stale`)
    first = people[0].cached()
    cache.write_json(cache.measures_path, {"version": CACHE_VERSION, "uid": render.uid, **first, "info": info,
                                           "render_finished_at": finished,
                                           "people": [p.cached() for p in people[1:]]})
    cache.write_json(cache.scores_path, _summary(render, info, glitches, revision))
    return glitches


def analyse(ws: Workspace, render_id: int, *, swapper: Swapper | None = None, progress: ProgressFn = no_progress,
            identity_budget: int = IDENTITY_BUDGET) -> AnalysisReport:
    """Replay the whole render, cache its frames and thumbnails, measure, score and store every frame
    (every person's face, in a render that swaps several)."""
    started = time.perf_counter()
    render = ws.renders.get(render_id)
    cache = ReviewCache(ws, render.uid)
    video = probe(ws.clips.path_of(render.clip_id, what=f"render {render.uid}"))
    people = _people(ws, render, identity_budget)
    meter = _Meter()
    frames = 0
    thumbs: dict[int, np.ndarray] = {}

    def step(done: int, total: int | None) -> None:
        progress(done, video.frame_count)

    for fr in replay(ws, render.id, swapper=swapper, progress=step):
        if fr.index != frames:
            raise WorkspaceError(f"render {render.uid}: frame {fr.index} came out of order", path=ws.root)
        frames += 1
        for p, view in zip(people, _views(fr, people, render, ws), strict=True):
            with_id = view.status == "swapped" and p.seen % p.stride == 0
            p.seen += view.status == "swapped"
            m, mask, vec = meter.measure(view, with_id)
            p.measures.append(m)
            p.masks.append(mask)
            if vec is not None:
                p.vectors[fr.index] = vec
            if view.face is not None:
                p.dest[fr.index] = view.face
        cache.write_frame(fr.index, fr.original, fr.output, fr.mattes)
        thumbs[fr.index] = cache.thumbnail(fr.output)
    if not frames:
        raise WorkspaceError(f"render {render.uid}: no frames to analyse", path=ws.root)
    for p in people:
        _jumps(p.dest, p.measures)
        p.kind, p.reference = _identity_distances(p.measures, p.vectors, p.reference)
    size = cache.thumb_size(video.width, video.height)
    sheets = cache.write_sheets(thumbs, frames, size)
    info = {"frames": frames, "fps": video.fps, "width": video.width, "height": video.height,
            "thumb": list(size), "sheets": sheets}
    glitches = _finish(ws, cache, render, people, info, revision=1)
    flagged = sum(g.flagged for g in glitches)
    top = [g.to_dict() for g in ranked(glitches, 10)]
    swapped = sum(g.status == "swapped" for g in glitches)
    return AnalysisReport(render.uid, frames, swapped, flagged, people[0].kind, people[0].stride,
                          round(time.perf_counter() - started, 3), top, [p.model for p in people])


def _load_people(cache: ReviewCache) -> tuple[dict[str, Any], list[_Person]]:
    """The cached measures and masks of every person, the render's own model first."""
    data = cache.read_json(cache.measures_path)
    people = []
    for k, d in enumerate([data, *data.get("people", [])]):
        ref = np.asarray(d["reference"], np.float32) if d.get("reference") else None
        p = _Person(d.get("model", ""), ref, int(d.get("identity_stride", 1)), kind=d.get("identity_reference", ""))
        p.measures = [Measure.from_dict(m) for m in d["measures"]]
        masks = cache.read_masks(k)
        if masks is None or len(masks) != len(p.measures):
            raise WorkspaceError("review cache is incomplete; run `doppel glitches` again", path=cache.root)
        p.masks = list(masks.copy())
        people.append(p)
    return data, people


def load_measures(cache: ReviewCache) -> tuple[dict[str, Any], list[Measure], np.ndarray]:
    """The cached data, measures and masks of the render's own model's faces (person 0)."""
    data, people = _load_people(cache)
    return data, people[0].measures, np.stack(people[0].masks)


def dirty_frames(ws: Workspace, render_id: int) -> list[int]:
    """Frames with a face whose settings (base + overrides, now) differ from those they were rendered with."""
    render = ws.renders.get(render_id)
    cache = ReviewCache(ws, render.uid)
    _, people = _load_people(cache)
    settings = frame_settings(ws, render)
    return sorted({m.index for p in people for m in p.measures
                   if m.status != "passthrough" and settings.at(m.index).hash() != m.settings_hash})


def swapped_frames(ws: Workspace, render_id: int) -> list[int]:
    """The frames of the analysed render that carry a face (what a new segmenter can change)."""
    _, people = _load_people(ReviewCache(ws, ws.renders.get(render_id).uid))
    return sorted({m.index for p in people for m in p.measures if m.status != "passthrough"})


def refresh(ws: Workspace, render_id: int, frames: Sequence[int] | None = None, *,
            swapper: Swapper | None = None, progress: ProgressFn = no_progress) -> list[int]:
    """Re-render ``frames`` (default: :func:`dirty_frames`) with the current settings, update their cached
    images, thumbnails and measures (every person's), and rescore the render. Returns the frames re-rendered."""
    render = ws.renders.get(render_id)
    cache = ReviewCache(ws, render.uid)
    data, people = _load_people(cache)
    n = len(people[0].measures)
    todo = sorted(set(dirty_frames(ws, render_id) if frames is None else frames))
    todo = [f for f in todo if 0 <= f < n]
    if not todo:
        return []
    meter = _Meter()
    thumbs: dict[int, np.ndarray] = {}
    for fr in replay(ws, render.id, todo, swapper=swapper, progress=progress):
        for p, view in zip(people, _views(fr, people, render, ws), strict=True):
            m, mask, vec = meter.measure(view, view.status == "swapped")
            old = p.measures[fr.index]
            m.shot_cut = old.shot_cut  # a replay window may start mid-shot; keep the full run's cut
            m.landmark_jump = old.landmark_jump  # alignment is not a setting: unchanged by edits
            if vec is not None:
                m.identity = None if p.reference is None else round(float(np.linalg.norm(vec - p.reference)), 5)
            p.measures[fr.index], p.masks[fr.index] = m, mask
        cache.write_frame(fr.index, None, fr.output, fr.mattes)
        thumbs[fr.index] = cache.thumbnail(fr.output)
    info = data["info"]
    cache.update_sheet_cells(thumbs, tuple(info["thumb"]))
    revision = int(cache.read_json(cache.scores_path).get("revision", 1)) + 1
    _finish(ws, cache, render, people, info, revision)
    return todo


def adopt_merge(ws: Workspace, render_id: int) -> None:
    """Mark the review cache as matching the render's latest merge (after review exported it: the cache
    already holds what that merge wrote, and the scores live apart from the frame rows it rewrote)."""
    render = ws.renders.get(render_id)
    cache = ReviewCache(ws, render.uid)
    data = cache.read_json(cache.measures_path)
    data["render_finished_at"] = render.finished_at
    cache.write_json(cache.measures_path, data)


def is_stale(ws: Workspace, render_id: int) -> bool:
    """True when the render was merged again (outside review) after its review cache was made, or when
    there is no cache (or one an older doppel wrote): its frames, thumbnails and scores may no longer
    match the video."""
    render = ws.renders.get(render_id)
    cache = ReviewCache(ws, render.uid)
    if not cache.ready():
        return True
    try:
        data = cache.read_json(cache.measures_path)
    except WorkspaceError:
        return True
    return data.get("version") != CACHE_VERSION or data.get("render_finished_at") != render.finished_at
