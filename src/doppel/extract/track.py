"""Follow faces from frame to frame so that one track is one person.

Per frame, each live track predicts its face box from its previous landmarks, confirms it (every
``check_every`` frames) with the detector run on a small region around that box (cheap: the face
is scaled to ~96 px), and
places landmarks in the predicted box (in the detected one only when the two disagree: the
detector's box sizes jump between pyramid scales, and landmarks follow the box). A track whose
face is not re-detected coasts on its landmark box for at most ``max_coast`` frames, then
ends. Every ``detect_every`` frames (and whenever nothing is tracked) the detector scans the
whole frame, downscaled so its long side is ``detect_size``, to start tracks for new faces;
detections are associated with tracks by box overlap (IoU).

Coordinates are frame pixels; ``gray`` frames are uint8 ``(H, W)``.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass, field

import cv2
import numpy as np

from doppel.extract.base import Detection, Detector, Landmarker, box_iou

Box = tuple[float, float, float, float]
COASTED_SCORE = -1.0
"""``det_score`` of a face placed from the previous landmarks because re-detection failed."""

_ROI_FACE = 96.0  # face side (px) the region around a track is scaled to for re-detection
_ROI_MARGIN = 1.6  # region side / face side


@dataclass(frozen=True)
class TrackerConfig:
    detect_size: int = 640
    detect_every: int = 10
    threshold: float = 0.0
    track_threshold: float = -0.4
    max_coast: int = 2
    check_every: int = 2  # re-detect each track every Nth frame (and every frame while coasting)
    min_iou: float = 0.3
    reanchor_iou: float = 0.5
    calib_rate: float = 0.05


@dataclass
class Observation:
    """One face of one track in one processed frame (``position``: index within the track)."""

    track_id: int
    position: int
    frame_index: int
    box: Box
    det_score: float
    landmarks: np.ndarray  # float32 (N, 2), raw
    # Re-detected in this frame (or a new detection). Unconfirmed faces (coasting, or not checked on
    # this frame) are the face only if a later check confirms the track.
    confirmed: bool = True


@dataclass
class TrackState:
    id: int
    start: int
    landmarks: np.ndarray
    calib: np.ndarray  # box centre offset (x, y) and side, in units of the landmark extent
    length: int = 1
    coast: int = 0
    box: Box = (0.0, 0.0, 0.0, 0.0)
    score: float = 0.0  # of the last detection


def _lm_frame(lm: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre and size (geometric mean of width and height) of the landmarks' bounding box."""
    lo, hi = lm[:68].min(0), lm[:68].max(0)
    return (lo + hi) / 2, float(math.sqrt(max(1e-6, (hi[0] - lo[0]) * (hi[1] - lo[1]))))


def _calibrate(box: Box, lm: np.ndarray) -> np.ndarray:
    c, s = _lm_frame(lm)
    bc = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
    side = math.sqrt((box[2] - box[0]) * (box[3] - box[1]))
    return np.array([(bc[0] - c[0]) / s, (bc[1] - c[1]) / s, side / s])


def _box_from(lm: np.ndarray, calib: np.ndarray) -> Box:
    c, s = _lm_frame(lm)
    cx, cy, half = c[0] + calib[0] * s, c[1] + calib[1] * s, calib[2] * s / 2
    return (cx - half, cy - half, cx + half, cy + half)


@dataclass
class Timings:
    """Seconds spent per stage (accumulated)."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    def add(self, stage: str, since: float) -> float:
        now = time.perf_counter()
        self.seconds[stage] += now - since
        return now


class FaceTracker:
    def __init__(self, detector: Detector, landmarker: Landmarker, config: TrackerConfig,
                 timings: Timings | None = None) -> None:
        self.detector, self.landmarker, self.config = detector, landmarker, config
        self.timings = timings or Timings()
        self.live: list[TrackState] = []
        self._next_id = 1
        self._processed = 0

    def _full_detect(self, gray: np.ndarray) -> list[Detection]:
        h, w = gray.shape
        scale = min(1.0, self.config.detect_size / max(h, w))
        small = cv2.resize(gray, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA) \
            if scale < 1 else gray
        return [d.scaled(1 / scale) for d in self.detector.detect(small, threshold=self.config.threshold)]

    def _roi_detect(self, gray: np.ndarray, pred: Box) -> Detection | None:
        h, w = gray.shape
        side = math.sqrt(max(1.0, (pred[2] - pred[0]) * (pred[3] - pred[1])))
        cx, cy = (pred[0] + pred[2]) / 2, (pred[1] + pred[3]) / 2
        half = side * _ROI_MARGIN / 2
        x0, y0 = max(0, int(cx - half)), max(0, int(cy - half))
        x1, y1 = min(w, math.ceil(cx + half)), min(h, math.ceil(cy + half))
        if x1 - x0 < 8 or y1 - y0 < 8:
            return None
        scale = min(2.0, max(_ROI_FACE, self.detector.min_face * 1.15) / side)
        roi = gray[y0:y1, x0:x1]
        if abs(scale - 1) > 0.05:
            roi = cv2.resize(roi, (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))),
                             interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        else:
            scale = 1.0
        best, best_iou = None, self.config.min_iou
        for d in self.detector.detect(roi, threshold=self.config.track_threshold):
            d = d.scaled(1 / scale, x0, y0)
            iou = box_iou(d.box, pred)
            if iou > best_iou:
                best, best_iou = d, iou
        return best

    def step(self, frame_index: int, gray: np.ndarray) -> tuple[list[Observation], list[int]]:
        """Process one frame: the faces observed, and the ids of tracks that ended before it."""
        t = time.perf_counter()
        found: list[Observation] = []
        ended: list[int] = []
        kept: list[TrackState] = []
        for track in self.live:
            pred = _box_from(track.landmarks, track.calib)
            check = track.coast > 0 or (self._processed + track.id) % self.config.check_every == 0
            det = self._roi_detect(gray, pred) if check else None
            t = self.timings.add("detect", t)
            if det is None and check:
                track.coast += 1
                if track.coast > self.config.max_coast:
                    ended.append(track.id)
                    continue
                box, score = pred, COASTED_SCORE
            elif det is None:  # not checked on this frame: confirmed (or not) by the next check
                box, score = pred, track.score
            else:
                # The detector's boxes jump between its pyramid scales (+-20% from frame to frame) and
                # the landmarker follows its box, so the box comes from the previous landmarks unless
                # the detection disagrees with it.
                track.coast = 0
                box = pred if box_iou(det.box, pred) >= self.config.reanchor_iou else det.box
                score = track.score = det.score
            try:
                lm = self.landmarker.landmarks(gray, box)
            except LookupError:  # the landmarker sees no face in the box: the track is lost
                ended.append(track.id)
                continue
            finally:
                t = self.timings.add("landmarks", t)
            c_old, s_old = _lm_frame(track.landmarks)
            c_new, s_new = _lm_frame(lm)
            jumped = abs(math.log(s_new / s_old)) > 0.35 or float(np.linalg.norm(c_new - c_old)) > 0.6 * s_old
            if det is None and jumped:  # drifting onto something that is not the face
                ended.append(track.id)
                continue
            if det is not None:  # a slow average of how the detector's box sits on the landmarks
                rate = self.config.calib_rate
                track.calib = (1 - rate) * track.calib + rate * _calibrate(det.box, lm)
            track.landmarks, track.box = lm, box
            found.append(Observation(track.id, track.length, frame_index, box, score, lm, confirmed=det is not None))
            track.length += 1
            kept.append(track)
        self.live = kept
        if not self.live or self._processed % self.config.detect_every == 0:
            t = time.perf_counter()
            dets = self._full_detect(gray)
            t = self.timings.add("detect", t)
            for det in dets:
                if any(box_iou(det.box, tr.box) > self.config.min_iou for tr in self.live):
                    continue
                try:
                    lm = self.landmarker.landmarks(gray, det.box)
                except LookupError:
                    continue
                finally:
                    t = self.timings.add("landmarks", t)
                track = TrackState(self._next_id, frame_index, lm, _calibrate(det.box, lm), box=det.box,
                                   score=det.score)
                self._next_id += 1
                self.live.append(track)
                found.append(Observation(track.id, 0, frame_index, det.box, det.score, lm))
        # Two tracks on one face: keep the older.
        for a in list(self.live):
            for b in list(self.live):
                if a.id < b.id and b in self.live and box_iou(a.box, b.box) > 0.5:
                    self.live.remove(b)
                    ended.append(b.id)
                    found = [o for o in found if o.track_id != b.id]
        self._processed += 1
        return found, ended

    def finish(self) -> list[int]:
        ended = [t.id for t in self.live]
        self.live = []
        return ended
