"""Per-frame measurements that glitch scoring ranks: pure functions of images and landmarks.

Each compares the merged frame with its plate (the original frame) or describes the swap in a
form that can be compared with its neighbours in time. Nothing here normalises or ranks; see
:mod:`doppel.review.glitches`.

Conventions: images are uint8 RGB ``(H, W, 3)``; landmarks float ``(68, 2)`` (x, y) in frame
pixels, iBUG order; masks bool ``(H, W)``. Lengths are divided by the interocular distance so a
value means the same for a small and a large face. Mouth and eye openness, and the interocular
distance, are face geometry: :mod:`doppel.ops.face`.
"""

from __future__ import annotations

import cv2
import numpy as np

from doppel.ops.align import warp_to_face
from doppel.ops.face import EYE_L, EYE_R, interocular

MASK_SIZE = 48  # side of the crop-space mask kept per frame for mask-stability scoring


def gaze(image: np.ndarray, lm: np.ndarray) -> np.ndarray | None:
    """Where the iris sits in each eye: ``(2, 2)`` float64, per eye ``(u, v)``.

    ``u`` runs from the outer corner (0) to the inner one (1) along the corner line; ``v`` is the
    offset across it, in the same unit. The iris is the centroid of the pixels inside the eye contour
    weighted by how much darker than the eye's 75th percentile they are. None when an eye is too small
    to measure (under ~6 px wide) or flat.
    """
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    h, w = gray.shape
    out = []
    for eye in (lm[EYE_L], lm[EYE_R]):
        p0, p3 = eye[0].astype(np.float64), eye[3].astype(np.float64)
        axis = p3 - p0
        length2 = float(axis @ axis)
        if length2 < 36.0:
            return None
        x0, y0 = np.floor(eye.min(0)).astype(int) - 1
        x1, y1 = np.ceil(eye.max(0)).astype(int) + 2
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x1 - x0 < 3 or y1 - y0 < 2:
            return None
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillPoly(mask, [np.round(eye - [x0, y0]).astype(np.int32)], 1)
        patch = gray[y0:y1, x0:x1].astype(np.float32)
        values = patch[mask > 0]
        if values.size < 4:
            return None
        weight = np.clip(np.percentile(values, 75) - patch, 0.0, None) * (mask > 0)
        total = float(weight.sum())
        if total <= 1e-6:  # a flat eye: no iris to find
            return None
        ys, xs = np.mgrid[0:patch.shape[0], 0:patch.shape[1]]
        centre = np.array([(xs * weight).sum() / total + x0, (ys * weight).sum() / total + y0]) - p0
        u = float(centre @ axis) / length2
        v = float(axis[0] * centre[1] - axis[1] * centre[0]) / length2
        out.append((u, v))
    return np.array(out, dtype=np.float64)


def landmark_shift(a: np.ndarray, b: np.ndarray) -> float:
    """Mean distance between two landmark sets over the interocular distance of ``a``."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b, axis=1).mean() / interocular(a))


def matte_region(matte: np.ndarray) -> np.ndarray:
    """Where the swap shows at least half as strongly as at its strongest in this frame: bool ``(H, W)``
    from the frame's uint8 matte. Relative to the frame's peak, so that a barely trained model, whose
    learned mask never passes one half, still has a face region to compare; a trained model's matte
    peaks at 255, where this is the matte above one half."""
    peak = int(matte.max()) if matte.size else 0
    return matte > peak // 2 if peak > 0 else np.zeros(matte.shape, bool)


def colour_offset(original: np.ndarray, output: np.ndarray, region: np.ndarray) -> np.ndarray | None:
    """Mean CIE Lab of the merged face minus the plate's, inside ``region``: float64 ``(3,)`` (L in 0..100).

    A colour transfer that holds steady keeps this offset steady; a jump from one frame to the next
    is a colour glitch. None when the region is (nearly) empty.
    """
    ys, xs = np.nonzero(region)
    if ys.size < 16:
        return None
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    sel = region[y0:y1, x0:x1]
    lab = [cv2.cvtColor(np.ascontiguousarray(img[y0:y1, x0:x1]).astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)[sel]
           for img in (output, original)]
    return (lab[0].mean(0) - lab[1].mean(0)).astype(np.float64)


def crop_mask(region: np.ndarray, transform: np.ndarray, face_size: int) -> np.ndarray:
    """The frame-space face region seen in aligned-crop space: uint8 ``(MASK_SIZE, MASK_SIZE)`` in {0, 1}.

    ``transform`` maps frame pixels to a ``face_size`` crop; in crop space a steady mask stays put
    however the face moves, so frame-to-frame differences are mask instability, not motion.
    """
    m = np.asarray(transform, np.float64) * (MASK_SIZE / face_size)
    small = warp_to_face(region.astype(np.uint8) * 255, m, MASK_SIZE)
    return (small > 127).astype(np.uint8)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two binary masks (1.0 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)
