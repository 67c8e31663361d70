"""Faces seen in a video, measured the same way in the original and in the merged clip.

Both clips go through extraction's own tracker (:class:`doppel.extract.track.FaceTracker`, the
dlib HOG detector and 68-point landmarker) with the same settings, so that differences between
their landmarks come from the pictures, not from the measuring. Landmarks are raw (unsmoothed)
frame pixels.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from doppel.core.progress import ProgressFn, no_progress
from doppel.extract import backends
from doppel.extract.base import box_iou
from doppel.extract.track import FaceTracker, Observation, TrackerConfig
from doppel.io.video import read_frames

DETECTOR = "dlib-hog"
LANDMARKER = "dlib-68"


@dataclass(frozen=True)
class SeenFace:
    """One face in one frame: box ``(x0, y0, x1, y1)``, float32 ``(68, 2)`` landmarks, track id."""

    frame_index: int
    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    track_id: int
    coasted: bool


def scan(path: Path, *, progress: ProgressFn = no_progress, total: int | None = None,
         config: TrackerConfig | None = None) -> dict[int, list[SeenFace]]:
    """Every face the tracker follows in ``path``: frame index -> faces (frames without any are absent)."""
    tracker = FaceTracker(backends.detector(DETECTOR), backends.landmarker(LANDMARKER), config or TrackerConfig())
    seen: dict[int, list[SeenFace]] = {}
    for n, frame in enumerate(read_frames(path), 1):
        gray = cv2.cvtColor(frame.image, cv2.COLOR_RGB2GRAY)
        observations, _ = tracker.step(frame.index, gray)
        if observations:
            seen[frame.index] = [_seen(o) for o in observations]
        progress(n, total)
    return seen


def _seen(o: Observation) -> SeenFace:
    return SeenFace(o.frame_index, tuple(float(v) for v in o.box), np.asarray(o.landmarks, np.float32)[:68],  # type: ignore[arg-type]
                    o.track_id, o.det_score < -0.99)


def main_person(seen: dict[int, list[SeenFace]], known: dict[int, np.ndarray] | None = None
                ) -> dict[int, SeenFace]:
    """The face of one track in each frame it covers: the track that overlaps the ``known`` boxes
    (frame index -> ``(x0, y0, x1, y1)``, e.g. the destination's extracted faces) in most frames, or
    without them the longest track (the person the clip is about)."""
    if known:
        counts = Counter(f.track_id for i, faces in seen.items() for f in faces
                         if i in known and box_iou(f.box, known[i]) > 0.3)
        if counts:
            best = max(counts, key=lambda t: (counts[t], -t))
            return {i: f for i, faces in seen.items() for f in faces if f.track_id == best}
    counts = Counter(f.track_id for faces in seen.values() for f in faces)
    if not counts:
        return {}
    longest = max(counts, key=lambda t: (counts[t], -t))
    return {i: f for i, faces in seen.items() for f in faces if f.track_id == longest}


def matched(reference: dict[int, SeenFace], seen: dict[int, list[SeenFace]], *, min_iou: float = 0.3
            ) -> dict[int, SeenFace]:
    """Per frame of ``reference``, the face of ``seen`` in the same frame overlapping it most
    (IoU above ``min_iou``): the same head in the other clip. Only faces the detector confirmed
    count (a track coasting over a frame where no face was detected is not a face found)."""
    out: dict[int, SeenFace] = {}
    for i, ref in reference.items():
        best = max((f for f in seen.get(i, []) if not f.coasted), key=lambda f: box_iou(f.box, ref.box), default=None)
        if best is not None and box_iou(best.box, ref.box) > min_iou:
            out[i] = best
    return out
