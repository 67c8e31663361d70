"""Short gaps in a destination person's faces, bridged so the swap does not pop back to the plate.

A hand or a phone passing over a face can hide it from the detector for a few frames: extraction ends
the track and starts a new one when the face shows again, and merge would pass the frames between
through, so the performer's own face flashes up under the occluder. Between two faces of the person at
most :data:`MAX_GAP_S` apart, in about the same place and at about the same size, each missing frame
gets a face whose landmarks are interpolated linearly; the segmenter keeps whatever covers it on top.
Bridged faces exist only in memory (``id`` 0, no crop on disk, ``det_score`` :data:`BRIDGED_SCORE`), and
merge swaps one only where the segmenter runs and sees at least :data:`MIN_VISIBLE` of a face in it (a
face really gone, not hidden, stays passed through; :func:`doppel.merge.stages.run_segmenter`).
"""

from __future__ import annotations

from dataclasses import replace
from itertools import pairwise

import numpy as np

from doppel.ops.align import estimate_transform
from doppel.store.records import FaceRecord

MAX_GAP_S = 0.5  # the longest gap bridged, in seconds
MAX_SHIFT = 0.5  # the most the face's centre may move across the gap, in face sizes
MAX_SCALE = 1.3  # the most its size may change across the gap (ratio)
BRIDGED_SCORE = -2.0  # det_score of a bridged face
MIN_VISIBLE = 0.2  # the share of a bridged face's hull the segmenter must see as face for it to be swapped


def is_bridged(face: FaceRecord | None) -> bool:
    return face is not None and face.det_score == BRIDGED_SCORE


def _centre_size(face: FaceRecord) -> tuple[np.ndarray, float]:
    lm = np.asarray(face.landmarks_smooth, np.float64)
    return lm.mean(0), float(np.ptp(lm, axis=0).mean())


def bridged(faces: dict[int, FaceRecord]) -> dict[int, FaceRecord]:
    """``faces`` (frame index -> face) with the short gaps between them filled; see the module docstring."""
    out = dict(faces)
    for i0, i1 in pairwise(sorted(faces)):
        a, b = faces[i0], faces[i1]
        if i1 - i0 < 2 or b.time - a.time > MAX_GAP_S:
            continue
        (ca, sa), (cb, sb) = _centre_size(a), _centre_size(b)
        if float(np.linalg.norm(cb - ca)) > MAX_SHIFT * max(sa, sb) or max(sa, sb) > MAX_SCALE * min(sa, sb):
            continue  # not plainly the same face in the same place: leave the gap
        for i in range(i0 + 1, i1):
            t = (i - i0) / (i1 - i0)
            lm = ((1 - t) * a.landmarks_smooth + t * b.landmarks_smooth).astype(np.float32)
            out[i] = replace(
                a, id=0, frame_index=i, time=(1 - t) * a.time + t * b.time, track_id=None,
                bbox=(1 - t) * np.asarray(a.bbox, np.float64) + t * np.asarray(b.bbox, np.float64),
                det_score=BRIDGED_SCORE, landmarks=lm, landmarks_smooth=lm, landmark_score=None,
                yaw=(1 - t) * a.yaw + t * b.yaw, pitch=(1 - t) * a.pitch + t * b.pitch,
                roll=(1 - t) * a.roll + t * b.roll, embedding=None,
                transform=estimate_transform(lm, a.size, a.face_type),  # type: ignore[arg-type]
                excluded=False, exclude_reason=None)
    return out
