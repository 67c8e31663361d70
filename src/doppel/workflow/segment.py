"""The face segmenter in a workspace: which one merge uses, and fine-tuning it on the workspace's faces
and the artist's polygons (``doppel mask train``, review's "retrain mask").

A workspace's segmenter lives in ``WS/models/_segmenter/``; without one, merge uses the base
segmenter shipped with doppel. Fine-tuning always starts from the base, so a retrain never drifts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from doppel import __version__
from doppel.core.errors import InputError, WorkspaceError
from doppel.core.hashing import file_sha256
from doppel.core.progress import ProgressFn, no_progress
from doppel.io.image import read_image
from doppel.io.video import read_frames
from doppel.merge.settings import validate_partial
from doppel.segment import store
from doppel.segment.crops import map_polygon, to_segmenter_crop
from doppel.segment.data import Sample, make_sample, with_prior
from doppel.segment.labels import Polygon
from doppel.segment.segmenter import Segmenter, load_segmenter
from doppel.segment.train import SegTrainConfig, TrainReport
from doppel.segment.train import train as run_training
from doppel.segment.unet import UNetConfig
from doppel.store import Workspace
from doppel.store.records import FaceRecord
from doppel.workflow.models import model_of

log = logging.getLogger(__name__)

SEGMENTER_DIR = "_segmenter"  # under WS/models/
GLASSES_SHARE = 0.3  # an identity "wears glasses" when the base sees glasses on this share of its faces
GLASSES_AREA = 0.004  # ... covering at least this fraction of the crop
BASE_SURE = 0.9  # below this much certainty of face inside the hull, the base's label replaces the hull's
PATCHES = 64  # face crops synthetic "other face" occluders are cut from


def segmenter_dir(ws: Workspace) -> Path:
    return ws.models_dir() / SEGMENTER_DIR


def segmenter_for(ws: Workspace, *, threads: int | None = None) -> Segmenter:
    """The workspace's fine-tuned segmenter when there is one, else the base segmenter."""
    folder = segmenter_dir(ws)
    return load_segmenter(folder if store.is_segmenter(folder) else None, threads=threads)


def segmenter_weights(ws: Workspace) -> tuple[Path, str]:
    """The folder of the segmenter merge uses here (as :func:`segmenter_for` picks it) and its weights'
    SHA-256: what a batch worker, which never opens the workspace, loads and checks."""
    folder = segmenter_dir(ws)
    if not store.is_segmenter(folder):
        folder = store.base_dir()
    return folder, file_sha256(folder / store.WEIGHTS)


# -- samples ---------------------------------------------------------------------------------------
def face_samples(faces: Sequence[FaceRecord], config: UNetConfig, *, glasses_unknown: bool = False,
                 progress: ProgressFn = no_progress) -> list[Sample]:
    """Training samples from extracted faces (their aligned crops, re-cut in the segmenter's framing).
    Faces whose crop file is gone (deleted by hand, say) are skipped with a warning."""
    out = []
    missing = 0
    for k, face in enumerate(faces):
        if not face.aligned_path.is_file():
            missing += 1
            continue
        image = read_image(face.aligned_path)
        crop, lm, _ = to_segmenter_crop(image, face.aligned_landmarks(), config.size, config.face_type)
        out.append(make_sample(crop, lm, glasses_unknown=glasses_unknown))
        progress(k + 1, len(faces))
    if missing:
        log.warning("%d of %d faces have no aligned crop on disk; the segmenter trains without them",
                    missing, len(faces))
    return out


@dataclass(frozen=True)
class LabelledFrame:
    """A frame an artist drew polygons on: the render, the frame and the polygons in force there."""

    render: str
    frame: int
    polygons: int


def polygon_samples(ws: Workspace, config: UNetConfig) -> tuple[list[Sample], list[LabelledFrame]]:
    """One sample per frame where an artist drew polygons in review (the first frame of each polygon
    override: where they were drawn, not the frames they were carried to)."""
    samples: list[Sample] = []
    frames: list[LabelledFrame] = []
    for render in ws.renders.all():
        drawn = [o for o in ws.renders.overrides(render.id) if o.changes.get("mask_polygons")]
        if not drawn:
            continue
        model = model_of(ws, render)
        if model.dst_identity is None:
            continue
        faces = {f.frame_index: f for f in ws.faces.of(model.dst_identity, clip_id=render.clip_id,
                                                         include_excluded=True)}
        wanted = {o.first: o for o in drawn if o.first in faces}
        if not wanted:
            continue
        path = ws.clips.path_of(render.clip_id, what=f"render {render.uid}")
        for frame in read_frames(path, start=min(wanted), stop=max(wanted) + 1):
            override = wanted.get(frame.index)
            if override is None:
                continue
            face = faces[frame.index]
            polys = validate_partial({"mask_polygons": override.changes["mask_polygons"]})["mask_polygons"]
            crop, lm, matrix = to_segmenter_crop(frame.image, face.landmarks_smooth, config.size, config.face_type)
            mapped = [Polygon(p["mode"], map_polygon(np.asarray(p["points"], np.float64) * face.size,
                                                      face.transform, matrix)) for p in polys]
            samples.append(make_sample(crop, lm, polygons=mapped))
            frames.append(LabelledFrame(render.uid, frame.index, len(mapped)))
    return samples, frames


def wears_glasses(segmenter: Segmenter, samples: Sequence[Sample]) -> bool:
    """Whether the base segmenter sees glasses on enough of these faces."""
    if not samples:
        return False
    pick = samples[:: max(1, len(samples) // 24)]
    glasses = segmenter.predict(np.stack([s.image for s in pick])).glasses
    return float(((glasses > 0.5).mean(axis=(1, 2)) > GLASSES_AREA).mean()) >= GLASSES_SHARE


def with_base_labels(segmenter: Segmenter, samples: Sequence[Sample], *, batch: int = 64) -> list[Sample]:
    """The samples again, their landmark-hull labels replaced by ``segmenter``'s (the base's) own wherever it
    doubts them (:data:`BASE_SURE`): a workspace's faces include its occluders (the sunglasses scene, the hand
    over the mouth), which the hull calls face, and a fine-tuning that believed it would learn to paint the
    swap over them (``research/retrain_lab.py``)."""
    out: list[Sample] = []
    for i in range(0, len(samples), batch):
        chunk = samples[i:i + batch]
        seen = segmenter.predict(np.stack([s.image for s in chunk]))
        out.extend(with_prior(s, seen.face[k], seen.glasses[k], BASE_SURE) for k, s in enumerate(chunk))
    return out


def patches_of(samples: Sequence[Sample], rng: np.random.Generator, n: int = PATCHES) -> list[np.ndarray]:
    if not samples:
        return []
    idx = rng.choice(len(samples), size=min(n, len(samples)), replace=False)
    return [samples[int(i)].image for i in idx]


# -- fine-tuning -------------------------------------------------------------------------------------
def fine_tune_config(**changes: Any) -> SegTrainConfig:
    """How a workspace fine-tunes the base: a gentler learning rate, a short warm-up, the base's
    normalisation statistics kept; ``changes`` (minutes, steps, threads, seed...) on top."""
    return SegTrainConfig(**{"lr": 5e-4, "warmup": 5, "freeze_norm": True, **changes})



@dataclass(frozen=True)
class MaskTrainRequest:
    """``identities``: whose faces to train on (default: every identity of the workspace)."""

    identities: tuple[str, ...] = ()
    config: SegTrainConfig = field(default_factory=lambda: fine_tune_config(minutes=3.0))
    every: int = 1  # use every Nth face of each identity
    max_faces: int = 1500
    base_labels: bool = True  # the base's labels where it doubts the hull's (False: the hull's as they are)


@dataclass
class MaskTrainReport:
    folder: str
    base: str
    identities: list[str]
    faces: int
    labelled_frames: list[dict[str, Any]]
    glasses: list[str]
    train: dict[str, Any]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def train_mask(ws: Workspace, request: MaskTrainRequest, *, progress: ProgressFn = no_progress,
               should_stop: Callable[[], bool] = lambda: False) -> MaskTrainReport:
    """Fine-tune the base segmenter on this workspace and save it where merge finds it."""
    started = time.perf_counter()
    # 1. the base, the people and the artist's polygons
    base = load_segmenter(None, runtime="torch")
    names = list(request.identities) or ws.identities.names()
    if not names:
        raise WorkspaceError("no identities in this workspace: extract some faces first", path=ws.root)
    labelled, frames = polygon_samples(ws, base.config)
    # 2. the faces, with the eye band left unknown for people who wear glasses
    samples: list[Sample] = []
    glasses: list[str] = []
    judge = load_segmenter(None)  # the base again, on its fastest runtime, to judge the faces' labels
    for name in names:
        faces = ws.faces.of(name)[:: request.every]
        if len(faces) > request.max_faces:
            faces = faces[:: -(-len(faces) // request.max_faces)]
        mine = face_samples(faces, base.config)
        if wears_glasses(judge, mine):
            glasses.append(name)
            mine = [make_sample(s.image, s.landmarks, glasses_unknown=True) for s in mine]
        if request.base_labels:
            mine = with_base_labels(judge, mine)
        samples.extend(mine)
    if not samples and not labelled:
        raise InputError("no faces to train the segmenter on", path=ws.root)
    # 3. train from the base and save
    model = store.copy_of(base.model)
    rng = np.random.default_rng(request.config.seed)
    report: TrainReport = run_training(model, samples + labelled, request.config, patches=patches_of(samples, rng),
                                       progress=progress, should_stop=should_stop)
    folder = segmenter_dir(ws)
    meta = {"doppel_version": __version__, "base": store.read_train(store.base_dir()).get("weights_sha256"),
            "identities": names, "faces": len(samples), "labelled_frames": [asdict(f) for f in frames],
            "glasses_identities": glasses, "config": request.config.model_dump(), "base_labels": request.base_labels,
            "report": report.to_dict()}
    store.save(folder, model, meta)
    return MaskTrainReport(str(folder), "base", names, len(samples), [asdict(f) for f in frames], glasses,
                           report.to_dict(), round(time.perf_counter() - started, 2))


# -- looking at it ---------------------------------------------------------------------------------
@dataclass
class SegmenterInfo:
    source: str  # "workspace" or "base"
    folder: str
    size: int
    face_type: str
    runtime: str
    trained: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def describe(ws: Workspace) -> SegmenterInfo:
    """Which segmenter merge uses in this workspace, and how it was trained."""
    seg = segmenter_for(ws)
    folder = segmenter_dir(ws) if seg.source != "base" else store.base_dir()
    meta = store.read_train(folder)
    keep = ("doppel_version", "trained_at", "identities", "faces", "labelled_frames", "glasses_identities",
            "held_out_identities", "weights_sha256")
    trained = {k: meta[k] for k in keep if k in meta}
    if "report" in meta:
        trained["steps"] = meta["report"].get("steps")
        trained["seconds"] = meta["report"].get("seconds")
    return SegmenterInfo("base" if seg.source == "base" else "workspace", str(folder), seg.size, seg.face_type,
                         seg.runtime, trained)


def preview(ws: Workspace, identity: str, count: int = 24, columns: int = 4) -> np.ndarray:
    """A contact sheet (uint8 RGB) of ``count`` of ``identity``'s faces with the masks merge would use."""
    from doppel.segment.preview import overlay, sheet

    seg = segmenter_for(ws)
    faces = ws.faces.of(identity)
    if not faces:
        raise InputError(f"identity {identity!r} has no faces", path=ws.root)
    pick = [faces[int(i)] for i in np.linspace(0, len(faces) - 1, min(count, len(faces))).round()]
    crops = []
    for face in pick:
        crop, _, _ = to_segmenter_crop(read_image(face.aligned_path), face.aligned_landmarks(), seg.size,
                                       seg.face_type)
        crops.append(crop)
    masks = seg.predict(np.stack(crops))
    return sheet([overlay(c, masks.face[i], masks.glasses[i]) for i, c in enumerate(crops)], columns)


def retrain_for_render(ws: Workspace, render_id: int, *, minutes: float = 3.0,
                       progress: ProgressFn = no_progress) -> MaskTrainReport:
    """Review's "retrain mask": fine-tune on the render's destination person and every polygon drawn in
    this workspace, for ``minutes``."""
    model = model_of(ws, ws.renders.get(render_id))
    people = (model.dst_identity,) if model.dst_identity else ()
    return train_mask(ws, MaskTrainRequest(identities=people, config=fine_tune_config(minutes=minutes, threads=2)),
                      progress=progress)
