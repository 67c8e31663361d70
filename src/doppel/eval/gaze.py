"""Where the irises are, from 68-point landmarks and the pixels inside each eye (a gaze proxy).

dlib's 68 points have no iris points: they trace the lids. Inside each eye's lid polygon (shrunk a
little so lashes and lid lines stay out) the iris and pupil are the dark part of the eye, so the
darkness-weighted centroid of that region finds the iris. Its position is given in the eye's own
frame: ``u`` along the line from the image-left corner to the image-right corner (0 at the left
corner, 1 at the right one; 0.5 = centred) and ``v`` across it in eye widths (positive = down in
the image). Both follow the eye, so head motion alone does not move them.

Frames are uint8 RGB ``(H, W, 3)`` (or grey); landmarks ``(68, 2)`` float frame pixels (x, y).
"""

from __future__ import annotations

import cv2
import numpy as np

from doppel.ops.face import EYE_L, EYE_R, one_face

EYES = (EYE_L, EYE_R)  # corners: 36/39 and 42/45 (image left, image right)
WORK_WIDTH = 48  # px: each eye is resampled to this width between its corners
MIN_WIDTH = 6.0  # px: narrower eyes are too small to read
MIN_OPEN = 0.12  # lid gap over eye width below which the eye counts as closed
DARK_QUANTILE = 0.35  # pixels darker than this quantile of the eye region count as iris


def _openness(pts: np.ndarray) -> float:
    width = float(np.linalg.norm(pts[3] - pts[0]))
    gap = (np.linalg.norm(pts[1] - pts[5]) + np.linalg.norm(pts[2] - pts[4])) / 2
    return float(gap / max(width, 1e-6))


def eye_iris(image: np.ndarray, eye: np.ndarray) -> tuple[float, float]:
    """``(u, v)`` of the iris in one eye given its 6 lid points ``(6, 2)`` in the dlib order (corner,
    two upper, corner, two lower); ``(nan, nan)`` when the eye is closed, tiny or off the frame."""
    pts = np.asarray(eye, dtype=np.float64)
    left, right = (pts[0], pts[3]) if pts[0, 0] <= pts[3, 0] else (pts[3], pts[0])
    axis = right - left
    width = float(np.linalg.norm(axis))
    if width < MIN_WIDTH or _openness(pts) < MIN_OPEN:
        return float("nan"), float("nan")
    ex = axis / width
    ey = np.array([-ex[1], ex[0]])
    # Resample the eye into its own frame: x along the corners, y across, WORK_WIDTH px per eye width.
    k = WORK_WIDTH / width
    half = WORK_WIDTH // 2
    origin = left - ey * (half / k)
    m = np.array([[ex[0] / k, ey[0] / k, origin[0]], [ex[1] / k, ey[1] / k, origin[1]]])  # eye -> frame
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else np.asarray(image)
    patch = cv2.warpAffine(grey.astype(np.float32), m, (WORK_WIDTH, WORK_WIDTH),
                           flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT,
                           borderValue=-1)
    local = (pts - origin) @ np.stack([ex, ey], 1) * k
    region = np.zeros((WORK_WIDTH, WORK_WIDTH), np.uint8)
    cv2.fillConvexPoly(region, cv2.convexHull(np.round(local * 16).astype(np.int32)), 1, lineType=cv2.LINE_8, shift=4)
    shrunk = cv2.erode(region, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    inside = (shrunk > 0) & (patch >= 0)
    if inside.sum() < 12:
        return float("nan"), float("nan")
    values = patch[inside]
    lo, thr = float(values.min()), float(np.quantile(values, DARK_QUANTILE))
    ys, xs = np.nonzero(inside)
    weight = np.clip(thr - values, 0, None) / max(thr - lo, 1e-6)
    if weight.sum() <= 0:
        return float("nan"), float("nan")
    cx, cy = float((xs * weight).sum() / weight.sum()), float((ys * weight).sum() / weight.sum())
    return cx / WORK_WIDTH, (cy - half) / WORK_WIDTH


def iris_positions(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """``(2, 2)`` float64: ``(u, v)`` of the image-left and image-right eye (NaN where unreadable)."""
    lm = one_face(landmarks)
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim not in (2, 3):
        raise ValueError(f"expected a uint8 RGB or grey image, got {img.shape} {img.dtype}")
    return np.array([eye_iris(img, lm[idx]) for idx in EYES])


def gaze_signal(positions: np.ndarray) -> np.ndarray:
    """Horizontal gaze per frame ``(T,)`` from ``(T, 2, 2)`` iris positions: the mean ``u`` of the
    readable eyes (NaN where neither is readable)."""
    p = np.asarray(positions, dtype=np.float64)
    u = p[..., 0]
    ok = np.isfinite(u)
    return np.where(ok.any(-1), np.nansum(u, -1) / np.maximum(ok.sum(-1), 1), np.nan)


def gaze_agreement(original: np.ndarray, merged: np.ndarray) -> tuple[float | None, float | None]:
    """``(correlation, mean absolute difference)`` of two ``(T,)`` gaze signals over frames where both
    are readable; the difference is in eye widths. Correlation is None when either signal is flat."""
    a, b = np.asarray(original, np.float64), np.asarray(merged, np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return None, None
    err = float(np.abs(a[ok] - b[ok]).mean())
    if a[ok].std() < 1e-6 or b[ok].std() < 1e-6:
        return None, err
    return float(np.corrcoef(a[ok], b[ok])[0, 1]), err
