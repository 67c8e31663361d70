"""Training labels of the visible face: from the landmark hull (refined where it is safe) and from
the artist's polygons.

The *visible face* is skin, eyes, brows, nose and mouth: not hair, hands, objects or glasses.
68 landmarks bound the face from the jaw to the brows; above the brows the forehead is taken up
to the hairline, found per column as the run of skin-coloured pixels that continues upward from
the brows (skin colour is measured on the cheeks and nose of the same face). Where that
measurement is unreliable (too few pixels, a very spread colour) the forehead falls back to the
merge hull's fixed lift, so a label is never worse than the hull merge used before.

Conventions: images float32 ``(S, S, 3)`` RGB in [0, 1] or uint8; landmarks ``(68, 2)`` crop
pixels; labels and weights float32 ``(S, S)`` in [0, 1] (weights may exceed 1 where an artist drew).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from doppel.ops.face import (
    BROWS,
    EYE_L,
    EYE_R,
    FOREHEAD_LIFT,
    MOUTH_OUTER,
    fill_hulls,
    hull_mask,
    interocular,
    one_face,
)

FOREHEAD_REACH = 0.32  # the hairline is searched up to brows + this x brow-to-chin
FALLBACK_LIFT = FOREHEAD_LIFT  # merge's hull, used where the skin model is unreliable
SKIN_DISTANCE = 2.8  # robust z (per Lab channel, combined) within which a pixel counts as skin
MAX_SKIN_SPREAD = 14.0  # Lab units: a wider skin sample means lighting or landmarks went wrong
POLYGON_WEIGHT = 4.0  # an artist's polygon counts this much more than an automatic label


@dataclass(frozen=True)
class Polygon:
    """An artist's polygon in the segmenter's crop: ``points`` ``(K, 2)`` crop pixels."""

    mode: Literal["include", "exclude"]
    points: np.ndarray


def _fill(size: int, pts: np.ndarray) -> np.ndarray:
    """A polygon (not its hull: an artist's polygon may be concave) filled anti-aliased, float32 ``(S, S)``."""
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [np.round(np.asarray(pts, np.float64) * 16).astype(np.int32)], 255, lineType=cv2.LINE_AA,
                 shift=4)
    return mask.astype(np.float32) / 255.0


def lifted_hull(landmarks: np.ndarray, size: int, lift: float) -> np.ndarray:
    """The face hull with the brows raised by ``lift`` x brow-to-chin (:func:`doppel.ops.face.hull_mask`;
    0: jaw to brows), float32 ``(S, S)``."""
    return hull_mask(landmarks, size, "face", lift=lift)


def skin_sample(landmarks: np.ndarray, size: int) -> np.ndarray:
    """Where the skin colour is measured: cheeks and nose (below the eyes, beside and above the mouth)."""
    lm = one_face(landmarks)
    cheeks = [np.concatenate([lm[[1, 2, 3]], lm[[31, 41, 40]]]), np.concatenate([lm[[15, 14, 13]], lm[[35, 46, 47]]])]
    nose = lm[[27, 31, 33, 35]]
    mask = fill_hulls([*cheeks, nose], (size, size))
    features = fill_hulls([lm[idx] for idx in (EYE_L, EYE_R, MOUTH_OUTER)], (size, size))
    k = max(3, size // 32) | 1
    features = cv2.dilate(features, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    return (mask > 0.5) & (features < 0.5)


def skin_distance(image: np.ndarray, sample: np.ndarray) -> tuple[np.ndarray, float] | None:
    """Robust distance of every pixel's Lab colour from the sample's: ``(distance (S, S), spread)``, or
    None when the sample is too small to trust."""
    if int(sample.sum()) < 40:
        return None
    img = image.astype(np.float32) / (255.0 if image.dtype == np.uint8 else 1.0)
    lab = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2Lab)
    vals = lab[sample]
    med = np.median(vals, axis=0)
    mad = np.median(np.abs(vals - med), axis=0) * 1.4826
    scale = np.maximum(mad, [3.0, 2.0, 2.0])
    spread = float(np.linalg.norm(mad))
    z = (lab - med) / scale
    return np.sqrt((z ** 2).sum(-1) / 3.0), spread


def _grow_up(seed: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """``seed`` grown row by row upward through ``allowed`` (one pixel of sideways slack per row)."""
    out = seed.copy()
    for y in range(out.shape[0] - 2, -1, -1):
        below = out[y + 1]
        reach = below | np.roll(below, 1) | np.roll(below, -1)
        out[y] |= allowed[y] & reach
    return out


def face_label(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The visible face of an unoccluded aligned crop: float32 ``(S, S)`` in [0, 1]."""
    size = image.shape[0]
    if image.ndim != 3 or image.shape[1] != size or image.shape[2] != 3:
        raise ValueError(f"expected a square (S, S, 3) RGB crop, got shape {image.shape}")
    base = lifted_hull(landmarks, size, 0.0)
    fallback = lifted_hull(landmarks, size, FALLBACK_LIFT)
    found = skin_distance(image, skin_sample(landmarks, size))
    if found is None or found[1] > MAX_SKIN_SPREAD:
        return fallback
    dist, _ = found
    reach = lifted_hull(landmarks, size, FOREHEAD_REACH) > 0.5
    skin = dist < SKIN_DISTANCE
    skin = cv2.morphologyEx(skin.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 1), np.uint8)).astype(bool)
    core = base > 0.5
    forehead = _grow_up(core, skin & reach)
    # never less than the jaw-to-brows hull; never more than the reach; a smooth, filled outline
    k = max(3, size // 40) | 1
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    opened = cv2.morphologyEx(forehead.astype(np.uint8), cv2.MORPH_OPEN, kernel)
    solid = cv2.morphologyEx(opened, cv2.MORPH_CLOSE, kernel).astype(bool) | core
    out = cv2.GaussianBlur(solid.astype(np.float32), (0, 0), max(size / 256.0, 0.5))
    return np.maximum(np.minimum(out, reach.astype(np.float32)), base)


def eye_band(landmarks: np.ndarray, size: int) -> np.ndarray:
    """Where glasses sit, across the whole crop: from above the brows to below the eyes (bool ``(S, S)``).
    Labels there are unknown on a face whose real glasses the hull cannot see."""
    lm = one_face(landmarks)
    eyes = np.concatenate([lm[EYE_L], lm[EYE_R]])
    iod = float(interocular(lm))
    top = float(lm[BROWS][:, 1].min()) - 0.25 * iod
    bottom = float(eyes[:, 1].max()) + 0.45 * iod
    rows = np.arange(size)[:, None]
    return np.broadcast_to((rows >= top) & (rows <= bottom), (size, size)).copy()


def with_polygons(face: np.ndarray, glasses: np.ndarray, weight: np.ndarray, glasses_weight: np.ndarray,
                  polygons: Sequence[Polygon]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Labels and weights with an artist's polygons applied in order: ``include`` = visible face
    (not glasses), ``exclude`` = not face (glasses unknown); both weigh :data:`POLYGON_WEIGHT`."""
    size = face.shape[0]
    face, glasses = face.copy(), glasses.copy()
    weight, glasses_weight = weight.copy(), glasses_weight.copy()
    for poly in polygons:
        inside = _fill(size, poly.points)
        on = inside > 0.5
        if poly.mode == "include":
            face = np.maximum(face, inside)
            glasses = glasses * (1.0 - inside)
            glasses_weight[on] = POLYGON_WEIGHT
        else:
            face = face * (1.0 - inside)
            glasses_weight[on] = 0.0
        weight[on] = POLYGON_WEIGHT
    return face, glasses, weight, glasses_weight
