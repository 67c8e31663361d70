"""`doppel detect`: is the face in this clip replaced? The detector's judgement beside the watermark's.

:func:`check_file` reads a video, an image or an image sequence, scores it with a detector
(:mod:`doppel.detect.infer`) and reads its provenance (:func:`doppel.provenance.verify.verify_file`); the
two are reported side by side and neither feeds the other. :func:`finetune` trains a detector further on a
workspace's own real footage (its extracted faces) and calibrates it on the part of that footage it did not
train on, into ``WS/detectors/<name>``.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from doppel.core.errors import DoppelError, InputError, WorkspaceError
from doppel.core.names import check_identity_name
from doppel.core.progress import ProgressFn, no_progress
from doppel.detect.calibrate import calibrate, save_calibration
from doppel.detect.data import FaceSet
from doppel.detect.faces import crop_face
from doppel.detect.infer import MAX_FRAMES, Detector, clip_score
from doppel.detect.model import WEIGHTS_DIR, load, save
from doppel.detect.train import TrainSettings, train
from doppel.io.atomic import atomic_path, write_text_atomic
from doppel.io.image import write_image
from doppel.io.video import media_exists, probe, read_frames
from doppel.provenance.verify import verify_file
from doppel.store import Workspace

log = logging.getLogger(__name__)

SEGMENT = 48
"""Frames per real clip when footage is cut into clips for calibration."""


def check_file(path: Path, detector: Detector, *, heatmap_dir: Path | None = None, heatmaps: int = 3,
               max_frames: int = MAX_FRAMES, progress: ProgressFn = no_progress) -> dict[str, Any]:
    """The detector's report on ``path`` and its watermark, as one JSON-ready dict (``error`` set, and no
    score, when the file cannot be read)."""
    path = Path(path)
    out: dict[str, Any] = {"file": str(path), "clip_score": None, "threshold": detector.calibration.threshold,
                           "fake": None, "frames": [], "error": None}
    try:
        if not media_exists(path):
            raise InputError("no such file", path=path)
        info = probe(path)
        every = max(1, math.ceil(info.frame_count / max_frames)) if info.frame_count else 1
        frames = ((f.index, f.image) for f in read_frames(path, every=every))
        score, overlays = detector.score_clip(frames, consecutive=every == 1, heatmap_frames=heatmaps
                                              if heatmap_dir is not None else 0, progress=progress,
                                              total=math.ceil(info.frame_count / every) if info.frame_count else None)
    except DoppelError as exc:
        out["error"] = exc.message.removeprefix(f"{path}: ")
        return out
    out.update(score.to_dict())
    if heatmap_dir is not None:
        for index, image in overlays:
            target = Path(heatmap_dir) / f"{path.stem}-frame{index:06d}.png"
            with atomic_path(target) as tmp:
                write_image(tmp, image)
            out["heatmaps"].append(str(target))
    out["faces_found"] = score.faces_found
    if not score.faces_found:
        out["note"] = "no face was found, so nothing was judged"
    report = verify_file(path)
    wm = report.watermark
    out["watermark"] = {"detected": bool(wm.get("detected")), "payload": wm.get("payload"),
                        "false_positive_bound": wm.get("false_positive_bound"), "verdict": report.verdict,
                        "credentials": bool(report.credentials.get("valid"))}
    return out


@dataclass
class FinetuneReport:
    name: str
    folder: str
    identities: list[str]
    faces: int
    steps: int
    seconds: float
    threshold: float
    real_clips: int
    fpr_on_real: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _faces_of(ws: Workspace, identity: str, size: int, face_type: str, every: int,
              progress: ProgressFn) -> FaceSet:
    """The identity's extracted faces re-cut from their clips as the detector's crops (every ``every``th)."""
    records = [r for r in ws.faces.of(identity) if r.frame_index % every == 0]
    by_clip: dict[int, dict[int, np.ndarray]] = {}
    for r in records:
        by_clip.setdefault(r.clip_id, {})[r.frame_index] = r.landmarks_smooth
    crops, marks, frames, clips = [], [], [], []
    for clip_id, marks_at in by_clip.items():
        clip = ws.clips.path_of(clip_id, what="the face set's")
        wanted = sorted(marks_at)
        for f in read_frames(clip, start=wanted[0], stop=wanted[-1] + 1):
            if f.index in marks_at:
                crop, _, lm = crop_face(f.image, marks_at[f.index], size, face_type)  # type: ignore[arg-type]
                crops.append(crop)
                marks.append(lm)
                frames.append(f.index)
                clips.append(str(clip))
                progress(len(crops), len(records))
    n = len(crops)
    return FaceSet(np.array(crops, np.uint8).reshape(n, size, size, 3), np.array(marks, np.float32).reshape(n, 68, 2),
                   np.array([identity] * n, dtype=object), np.array(clips, dtype=object), np.array(frames, np.int64))


def finetune(ws: Workspace, name: str, *, identities: list[str] | None = None, base: Path | None = None,
             settings: TrainSettings | None = None, every: int = 1, progress: ProgressFn = no_progress
             ) -> FinetuneReport:
    """Train the detector in ``base`` (default: doppel's) further on the workspace's real faces of
    ``identities`` (default: all), holding the last quarter of every clip out to calibrate the threshold
    on; write it to ``WS/detectors/<name>``."""
    check_identity_name(name)
    names = identities or ws.identities.names()
    if not names:
        raise WorkspaceError("no identities with faces yet; extract real footage first (`doppel extract`)",
                             path=ws.root)
    model = load(base if base is not None else WEIGHTS_DIR)
    cfg = model.config
    sets = [_faces_of(ws, n, cfg.input_size, cfg.face_type, every, progress) for n in names]
    faces = FaceSet.concat(sets)
    seen = np.zeros(len(faces), bool)
    runs: list[np.ndarray] = []
    for clip in sorted(set(faces.clips)):
        idx = np.flatnonzero(faces.clips == clip)
        cut = np.quantile(faces.frames[idx], 0.75)
        seen[idx[faces.frames[idx] < cut]] = True
        held = idx[faces.frames[idx] >= cut]
        starts = faces.frames[held]
        runs += [held[(starts >= s) & (starts < s + SEGMENT)] for s in range(int(starts.min()), int(starts.max()) + 1,
                                                                             SEGMENT)] if len(held) else []
    runs = [r for r in runs if len(r)]
    if seen.sum() < 8 or not runs:
        raise WorkspaceError(f"too few faces to fine-tune on ({len(faces)}); extract more real footage",
                             path=ws.root)
    settings = settings or TrainSettings(steps=300, lr=2e-4)
    result = train(faces.subset(seen), settings, init=model, progress=progress)
    detector = Detector(result.model, calibrate([0.0]))
    probs, _ = detector.score_crops(faces.crops)
    scores = []
    for r in runs:
        per_frame: dict[int, float] = {}
        for i in r:
            per_frame[int(faces.frames[i])] = max(per_frame.get(int(faces.frames[i]), 0.0), float(probs[i]))
        scores.append(clip_score(per_frame.values()))
    cal = calibrate(scores, frames_per_clip=SEGMENT, source=f"{len(runs)} real clips of {', '.join(names)} in "
                                                           f"workspace {ws.root} (the last quarter of each clip)")
    folder = ws.root / "detectors" / name
    save(result.model, folder)
    save_calibration(cal, folder)
    write_text_atomic(folder / "train.json", json.dumps({"base": str(base or WEIGHTS_DIR), "identities": names,
                                                         "faces": int(seen.sum()), "recipe": settings.model_dump(),
                                                         "history": result.history}, indent=2) + "\n")
    return FinetuneReport(name, str(folder), names, int(seen.sum()), result.steps, round(result.seconds, 1),
                          cal.threshold, cal.real_clips, cal.fpr_on_real)


def find_detector(ws_or_folder: Path | None) -> Path:
    """A detector folder: ``None`` for doppel's own, a folder with ``config.json``, or ``WS/detectors/NAME``."""
    if ws_or_folder is None:
        return WEIGHTS_DIR
    path = Path(ws_or_folder)
    if not (path / "config.json").is_file():
        raise InputError("is not a detector folder (config.json, detector.safetensors, calibration.json)", path=path)
    return path
