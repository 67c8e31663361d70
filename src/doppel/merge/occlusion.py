"""Occlusion: where something in front of the face (a hand, a pen, a microphone) must stay on top.

Evidence, all in aligned-crop space:

- the learned mask says "not face" inside the landmark hull (the model was trained on masks that
  leave occluders out);
- the plate and the colour-matched swap disagree far more than they do elsewhere on the face
  (robust z-score of the Lab distance), away from the eyes and mouth, where two identities
  differ anyway; or the plate has a strong edge where the swap has none;
- the landmarker was unsure of the face (low landmark confidence).

The per-pixel map can be cut out of the matte; the per-frame score goes to ``render_frames``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from doppel.ops.face import hull_mask

Z_THRESHOLD = 3.5  # robust z-score of the colour distance that counts as disagreement
MIN_LAB_DISTANCE = 22.0  # and at least this far apart in Lab (just noticeable is ~2; skin tones differ ~10)
EDGE_THRESHOLD = 0.25  # gradient magnitude (RGB in [0, 1], Sobel / 4) of an occluder's edge
MIN_BLOB = 0.004  # blobs smaller than this fraction of the hull are noise


@dataclass(frozen=True)
class Occlusion:
    score: float  # in [0, 1]: fraction of the face hull judged occluded, or low landmark confidence
    map: np.ndarray  # float32 (S, S) in [0, 1], 1 = occluded
    learned_fraction: float
    colour_fraction: float
    low_confidence: float


def _gradient(gray: np.ndarray) -> np.ndarray:
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
    return cv2.magnitude(gx, gy) / 4.0


def _drop_small(mask: np.ndarray, min_area: int) -> np.ndarray:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    keep = np.zeros(count, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_area
    return keep[labels]


def estimate(swapped: np.ndarray, plate: np.ndarray, hull: np.ndarray, learned: np.ndarray | None,
             landmarks_crop: np.ndarray, landmark_score: float | None) -> Occlusion:
    """``swapped`` (colour-matched) and ``plate``: float32 ``(S, S, 3)`` RGB in [0, 1]; ``hull``: the
    face hull ``(S, S)``; ``learned``: the model's mask or None; landmarks in crop pixels."""
    size = hull.shape[0]
    inside = hull > 0.5
    area = max(int(inside.sum()), 1)
    learned_occ = inside & (learned < 0.5) if learned is not None else np.zeros_like(inside)

    lab_s = cv2.cvtColor(np.ascontiguousarray(swapped, np.float32), cv2.COLOR_RGB2Lab)
    lab_p = cv2.cvtColor(np.ascontiguousarray(plate, np.float32), cv2.COLOR_RGB2Lab)
    dist = np.linalg.norm(lab_s - lab_p, axis=2)
    features = hull_mask(landmarks_crop, size, "eyes_mouth") > 0.5
    test = inside & ~features
    colour_occ = np.zeros_like(inside)
    if test.sum() > 32:
        vals = dist[test]
        med = float(np.median(vals))
        mad = float(np.median(np.abs(vals - med))) * 1.4826 + 1e-3
        colour_occ = test & ((dist - med) / mad > Z_THRESHOLD) & (dist > MIN_LAB_DISTANCE)
        gray_p, gray_s = cv2.cvtColor(plate, cv2.COLOR_RGB2GRAY), cv2.cvtColor(swapped, cv2.COLOR_RGB2GRAY)
        edges = _gradient(gray_p) - _gradient(gray_s)
        edge_occ = test & (edges > EDGE_THRESHOLD)
        colour_occ |= cv2.dilate(edge_occ.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & test
        k = max(3, size // 48) | 1
        colour_occ = cv2.morphologyEx(colour_occ.astype(np.uint8), cv2.MORPH_OPEN,
                                      cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))).astype(bool)
        colour_occ = _drop_small(colour_occ, int(MIN_BLOB * area) + 1)
    occ = learned_occ | colour_occ
    occ_map = cv2.GaussianBlur(occ.astype(np.float32), (0, 0), max(size / 128.0, 0.8))
    low_conf = 0.0 if landmark_score is None else float(np.clip((0.5 - landmark_score) / 0.5, 0.0, 1.0))
    learned_frac = float(learned_occ.sum()) / area
    colour_frac = float(colour_occ.sum()) / area
    score = max(float(occ.sum()) / area, low_conf)
    return Occlusion(score, np.clip(occ_map, 0.0, 1.0), learned_frac, colour_frac, low_conf)
