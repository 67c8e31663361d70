"""Face geometry on 68-point landmarks: the one definition of each face quantity doppel uses.

Training, merge, review and eval all measure and mask faces through this module, so a metric
means what the model was trained on.

Conventions: landmarks are ``float`` ``(x, y)`` pixel coordinates in the iBUG 68-point order,
shape ``(68, 2)`` for one face or ``(..., 68, 2)`` for many (more points may follow the 68; they
are ignored). Measures come back as float64 with the leading shape ``(...)``. Masks are float32
``(H, W)`` in [0, 1] (1 = face), anti-aliased at 1/16 px unless said otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

import cv2
import numpy as np

# -- index groups of the iBUG 68-point layout ("left" = image left, the subject's right) ---------
JAW = list(range(0, 17))
BROWS = list(range(17, 27))
BROW_L = BROWS[:5]
BROW_R = BROWS[5:]
NOSE = list(range(27, 36))
EYE_L = list(range(36, 42))  # contour from the outer corner, upper lid first
EYE_R = list(range(42, 48))  # contour from the inner corner, upper lid first
MOUTH_OUTER = list(range(48, 60))
MOUTH_INNER = list(range(60, 68))

CHIN = 8
NOSE_TOP = 27  # top of the nose bridge, between the brows
NOSE_TIP = 30
EYE_OUTER = (36, 45)  # outer eye corners (the 300-W benchmark's inter-ocular points)
MOUTH_CORNERS = (48, 54)
INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))  # upper and lower inner lip, left to right

FOREHEAD_LIFT = 0.12  # merge's hull: brows raised by this fraction of the brow-to-chin distance
MIN_LENGTH = 1e-6  # lengths are floored at this before dividing by them

Region = Literal["face", "eyes", "mouth", "eyes_mouth"]
REGIONS: tuple[Region, ...] = get_args(Region)
Between = Literal["centres", "corners"]


def landmarks68(landmarks: np.ndarray) -> np.ndarray:
    """The first 68 points as float64 ``(..., 68, 2)``; raises ``ValueError`` naming a bad shape."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.ndim < 2 or lm.shape[-2] < 68 or lm.shape[-1] != 2:
        raise ValueError(f"expected landmarks of shape (68, 2) or (..., >=68, 2), got {lm.shape}")
    return lm[..., :68, :]


def one_face(landmarks: np.ndarray) -> np.ndarray:
    """The first 68 points of one face as float64 ``(68, 2)``; raises ``ValueError`` naming a bad shape."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.ndim != 2 or lm.shape[0] < 68 or lm.shape[1] != 2:
        raise ValueError(f"expected landmarks of one face, shape (>=68, 2), got {lm.shape}")
    return lm[:68]


def _dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.linalg.norm(a - b, axis=-1)


# -- measures --------------------------------------------------------------------------------------
def eye_centres(landmarks: np.ndarray) -> np.ndarray:
    """Centre of each eye (the mean of its six contour points): ``(..., 2, 2)``, left eye first."""
    lm = landmarks68(landmarks)
    return np.stack([lm[..., EYE_L, :].mean(-2), lm[..., EYE_R, :].mean(-2)], axis=-2)


def interocular(landmarks: np.ndarray, *, between: Between = "centres") -> np.ndarray:
    """Inter-ocular distance ``(...,)`` in landmark units, at least :data:`MIN_LENGTH` (safe to divide by).

    ``centres``: between the eye centres, the face's scale everywhere in doppel (alignment fits
    the eye centres too); ``corners``: between the outer eye corners 36 and 45, the 300-W
    benchmark's normaliser, for NME figures comparable with the literature.
    """
    lm = landmarks68(landmarks)
    if between == "centres":
        c = eye_centres(lm)
        d = _dist(c[..., 1, :], c[..., 0, :])
    elif between == "corners":
        d = _dist(lm[..., EYE_OUTER[1], :], lm[..., EYE_OUTER[0], :])
    else:
        raise ValueError(f"unknown inter-ocular points {between!r}; expected 'centres' or 'corners'")
    return np.maximum(d, MIN_LENGTH)


def mouth_openness(landmarks: np.ndarray) -> np.ndarray:
    """Mean gap between the inner lips (61-63 against 67-65) over the eye-centre distance: ``(...,)``.

    About 0 for a closed mouth; a scale-free number, so faces of any size compare.
    """
    lm = landmarks68(landmarks)
    gaps = np.mean([_dist(lm[..., a, :], lm[..., b, :]) for a, b in INNER_LIP_PAIRS], axis=0)
    return gaps / interocular(lm)


def eye_openness(landmarks: np.ndarray) -> np.ndarray:
    """Eye aspect ratio of each eye, ``(..., 2)`` left eye first: the two lid gaps over twice the
    corner-to-corner width (about 0.3 open, under 0.15 shut; Soukupova and Cech 2016)."""
    lm = landmarks68(landmarks)
    eyes = lm[..., [EYE_L, EYE_R], :]  # (..., 2, 6, 2)
    width = np.maximum(_dist(eyes[..., 0, :], eyes[..., 3, :]), MIN_LENGTH)
    gaps = _dist(eyes[..., 1, :], eyes[..., 5, :]) + _dist(eyes[..., 2, :], eyes[..., 4, :])
    return gaps / (2 * width)


# -- hulls and masks -------------------------------------------------------------------------------
def hull_points(landmarks: np.ndarray, *, lift: float) -> np.ndarray:
    """The points whose convex hull is the face: the 68 landmarks and the ten brow points raised
    by ``lift`` x the brow-to-chin distance along the chin-to-nose-top line, ``(78, 2)`` float64.

    68 landmarks stop at the brows; the lift stands in for the forehead (0 adds none).
    """
    lm = one_face(landmarks)
    brows = lm[BROWS]
    height = np.linalg.norm(lm[CHIN] - brows.mean(0))
    up = lm[NOSE_TOP] - lm[CHIN]
    up = up / max(float(np.linalg.norm(up)), MIN_LENGTH)
    return np.concatenate([lm, brows + up * lift * height])


def fill_hulls(polygons: Sequence[np.ndarray], shape: tuple[int, ...], *, antialias: bool = True) -> np.ndarray:
    """The convex hull of each ``(K, 2)`` point set filled into one float32 ``(H, W)`` mask in [0, 1].

    ``antialias``: vertices at 1/16 px and soft edges; otherwise whole pixels and a hard 0/1 edge.
    """
    h, w = shape[:2]
    mask = np.zeros((h, w), np.uint8)
    for pts in polygons:
        p = np.asarray(pts, dtype=np.float64)
        if p.ndim != 2 or p.shape[1] != 2 or len(p) < 3:
            raise ValueError(f"expected polygons of shape (K >= 3, 2), got {p.shape}")
        if antialias:
            hull = cv2.convexHull(np.round(p * 16).astype(np.int32))
            cv2.fillConvexPoly(mask, hull, 255, lineType=cv2.LINE_AA, shift=4)
        else:
            cv2.fillConvexPoly(mask, cv2.convexHull(np.round(p).astype(np.int32)), 255)
    return mask.astype(np.float32) / 255.0


def _grown(points: np.ndarray, factor: float) -> np.ndarray:
    centre = points.mean(0)
    return centre + (points - centre) * factor


def hull_mask(landmarks: np.ndarray, size: int, region: Region = "face", *,
              lift: float = FOREHEAD_LIFT) -> np.ndarray:
    """The hull of ``region`` in a ``size`` x ``size`` crop, float32 ``(S, S)`` in [0, 1].

    ``face``: the whole face, forehead raised by ``lift`` (:func:`hull_points`); ``eyes``: each eye
    with its brow, grown by a quarter about its centre; ``mouth``: the outer lips grown by 35 %;
    ``eyes_mouth``: both. Merge composites inside these; training weighs its loss with ``face``.
    """
    lm = one_face(landmarks)
    if region == "face":
        return fill_hulls([hull_points(lm, lift=lift)], (size, size))
    polys: list[np.ndarray] = []
    if region in ("eyes", "eyes_mouth"):
        polys.append(_grown(np.concatenate([lm[EYE_L], lm[BROW_L]]), 1.25))
        polys.append(_grown(np.concatenate([lm[EYE_R], lm[BROW_R]]), 1.25))
    if region in ("mouth", "eyes_mouth"):
        polys.append(_grown(lm[MOUTH_OUTER], 1.35))
    if not polys:
        raise ValueError(f"unknown mask region {region!r}; expected one of {REGIONS}")
    return fill_hulls(polys, (size, size))


def features_mask(landmarks: np.ndarray, size: int) -> np.ndarray:
    """The eyes and the mouth alone (their contour hulls, no brows), dilated by about ``size / 32``
    px: float32 ``(S, S)`` in [0, 1]. Tighter than :func:`hull_mask`'s ``eyes_mouth``: training
    weighs the detail there, where a blurry swap shows first."""
    lm = one_face(landmarks)
    mask = np.maximum.reduce([fill_hulls([lm[idx]], (size, size)) for idx in (EYE_L, EYE_R, MOUTH_OUTER)])
    k = max(3, size // 32) | 1
    return cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
