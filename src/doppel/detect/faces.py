"""The faces a detector looks at: found with extract's detector, tracker and landmarks, cut as aligned crops.

Conventions: frames are RGB uint8 ``(H, W, 3)``; landmarks are float ``(68, 2)`` ``(x, y)`` frame pixels
(iBUG order); a crop is RGB uint8 ``(S, S, 3)`` aligned with :func:`doppel.ops.align.estimate_transform`
for ``face_type`` (``whole`` by default: the face with a margin around its hull, so a swap's seam is
inside the crop).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from doppel.extract import backends
from doppel.extract.track import FaceTracker, TrackerConfig
from doppel.ops.align import FaceType, estimate_transform, transform_points, warp_to_face


@dataclass(frozen=True)
class FoundFace:
    """One face in one frame."""

    frame_index: int
    track_id: int
    landmarks: np.ndarray  # float32 (68, 2) frame pixels
    box: tuple[float, float, float, float]


class FaceFinder:
    """Faces of consecutive frames of one clip, through extract's tracker (dlib HOG + 68 landmarks by default).

    ``min_face``: faces whose eye-to-mouth height is under this many pixels are skipped (too small to judge).
    """

    def __init__(self, detector: str = "dlib-hog", landmarker: str = "dlib-68", *, detect_every: int = 5,
                 min_face: float = 24.0) -> None:
        self.tracker = FaceTracker(backends.detector(detector, 0), backends.landmarker(landmarker),
                                   TrackerConfig(detect_every=detect_every))
        self.min_face = min_face

    def step(self, index: int, frame: np.ndarray) -> list[FoundFace]:
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame
        found, _ = self.tracker.step(index, gray)
        out = []
        for obs in found:
            lm = np.asarray(obs.landmarks[:68], dtype=np.float32)
            if face_height(lm) >= self.min_face:
                out.append(FoundFace(index, obs.track_id, lm, obs.box))
        return out


def largest(found: list[FoundFace]) -> FoundFace:
    """The face with the largest box (a clip's main subject)."""
    return max(found, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))


def face_height(landmarks: np.ndarray) -> float:
    """Distance from the eye centres' midpoint to the mouth centre, in pixels (the face's scale)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    eyes = (lm[36:42].mean(0) + lm[42:48].mean(0)) / 2
    return float(np.linalg.norm(lm[48:68].mean(0) - eyes))


def find_faces(frames: Iterable[tuple[int, np.ndarray]], **kwargs: object) -> Iterator[tuple[int, np.ndarray,
                                                                                          list[FoundFace]]]:
    """``(index, frame, faces)`` for each ``(index, frame)`` in order (consecutive frames track best)."""
    finder = FaceFinder(**kwargs)  # type: ignore[arg-type]
    for index, frame in frames:
        yield index, frame, finder.step(index, frame)


def crop_face(frame: np.ndarray, landmarks: np.ndarray, size: int, face_type: FaceType = "whole"
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The aligned crop ``(S, S, 3)``, its frame -> crop transform ``(2, 3)`` and the landmarks in the crop."""
    m = estimate_transform(landmarks, size, face_type)
    return warp_to_face(frame, m, size), m, transform_points(landmarks, m).astype(np.float32)
