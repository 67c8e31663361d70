"""The canonical face frame: similarity transforms between frame pixels and aligned face crops.

Conventions: landmarks are ``float`` arrays of shape ``(N, 2)`` in ``(x, y)`` pixel order, the
first 68 in the iBUG 68-point order. A transform is a ``float64`` ``(2, 3)`` matrix mapping
frame pixels to aligned-crop pixels. Images are ``(H, W, C)``.

Alignment fits five stable points (the two eye centres, each the mean of six contour points,
the nose tip and the mouth corners) to a fixed template, by least squares over rotation,
uniform scale and translation. Face types differ only in how much of the head the crop holds.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

from doppel.ops.face import MOUTH_CORNERS, NOSE_TIP, eye_centres, one_face

FaceType = Literal["full", "whole", "head"]
FACE_TYPES: tuple[FaceType, ...] = ("full", "whole", "head")

# Five-point template in the unit square for the "full" face type (brows to chin fill the crop).
_TEMPLATE_FULL = np.array(
    [
        [0.345, 0.400],  # eye centre, image left (subject's right)
        [0.655, 0.400],  # eye centre, image right
        [0.500, 0.560],  # nose tip
        [0.370, 0.735],  # mouth corner, image left
        [0.630, 0.735],  # mouth corner, image right
    ],
    dtype=np.float64,
)
# (zoom, downward shift): wider types shrink the face and move it down to leave room for hair.
_FACE_TYPE_FRAMING: dict[FaceType, tuple[float, float]] = {
    "full": (1.0, 0.0),
    "whole": (0.78, 0.04),
    "head": (0.60, 0.08),
}

def template(face_type: FaceType = "full", size: int = 1) -> np.ndarray:
    """The five template points for ``face_type`` in a ``size`` x ``size`` crop."""
    if face_type not in _FACE_TYPE_FRAMING:
        raise ValueError(f"unknown face type {face_type!r}; expected one of {FACE_TYPES}")
    zoom, shift = _FACE_TYPE_FRAMING[face_type]
    pts = 0.5 + (_TEMPLATE_FULL - 0.5) * zoom
    pts[:, 1] += shift
    return pts * size


def five_points(landmarks: np.ndarray) -> np.ndarray:
    """Eye centres, nose tip and mouth corners from 68-point landmarks, shape ``(5, 2)``."""
    lm = one_face(landmarks)
    return np.concatenate([eye_centres(lm), lm[[NOSE_TIP, *MOUTH_CORNERS]]])


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) taking ``src`` onto ``dst``.

    Umeyama (1991), without reflection. Returns a ``(2, 3)`` float64 matrix.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    fix = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        fix[1, 1] = -1
    rot = u @ fix @ vt
    var_s = (s**2).sum() / len(src)
    scale = float((sig * np.diag(fix)).sum() / var_s) if var_s > 0 else 1.0
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - m[:, :2] @ mu_s
    return m


def estimate_transform(landmarks: np.ndarray, size: int, face_type: FaceType = "full") -> np.ndarray:
    """Frame -> aligned-crop transform for a face with these 68-point landmarks."""
    return umeyama(five_points(landmarks), template(face_type, size))


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a ``(2, 3)`` affine matrix to ``(N, 2)`` points."""
    pts = np.asarray(points, dtype=np.float64)
    return pts @ matrix[:, :2].T + matrix[:, 2]


def invert(matrix: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(np.asarray(matrix, dtype=np.float64))


def warp_to_face(image: np.ndarray, matrix: np.ndarray, size: int, *,
                 interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Cut the aligned ``size`` x ``size`` face out of a frame."""
    return cv2.warpAffine(image, matrix, (size, size), flags=interpolation, borderMode=cv2.BORDER_REPLICATE)


def warp_to_frame(face: np.ndarray, matrix: np.ndarray, frame_shape: tuple[int, ...], *,
                  interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Put an aligned face (or its mask) back into frame coordinates (sub-pixel, inverse mapping)."""
    h, w = frame_shape[:2]
    return cv2.warpAffine(face, matrix, (w, h), flags=interpolation | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def transform_scale(matrix: np.ndarray) -> float:
    """The uniform scale of a similarity matrix (aligned pixels per frame pixel)."""
    return float(np.sqrt(abs(np.linalg.det(np.asarray(matrix)[:, :2]))))
