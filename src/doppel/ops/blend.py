"""Blending a face into a plate: feathered alpha and Poisson (gradient-domain) cloning.

``plate`` and ``face`` are uint8 ``(H, W, 3)`` RGB of the same size (a region of the frame);
``matte`` is float32 ``(H, W)`` in [0, 1]. Results are uint8 ``(H, W, 3)``. Where the matte is 0
the plate comes back unchanged, bit for bit.
"""

from __future__ import annotations

import cv2
import numpy as np


def _check(plate: np.ndarray, face: np.ndarray, matte: np.ndarray) -> None:
    if plate.shape != face.shape or plate.ndim != 3 or plate.shape[2] != 3:
        raise ValueError(f"plate {plate.shape} and face {face.shape} must be the same (H, W, 3)")
    if matte.shape != plate.shape[:2]:
        raise ValueError(f"matte {matte.shape} does not match plate {plate.shape[:2]}")
    if plate.dtype != np.uint8 or face.dtype != np.uint8:
        raise ValueError(f"expected uint8 plate and face, got {plate.dtype} and {face.dtype}")


def alpha_blend(plate: np.ndarray, face: np.ndarray, matte: np.ndarray) -> np.ndarray:
    """``plate + matte * (face - plate)`` with the matte quantised to 1/255, rounded; exactly the plate
    where the matte is 0 (and outside the bounding box of the matte nothing is even computed)."""
    _check(plate, face, matte)
    out = plate.copy()
    m8 = np.clip(matte * 255.0 + 0.5, 0, 255).astype(np.uint8)
    x, y, w, h = cv2.boundingRect(m8)
    if w == 0 or h == 0:
        return out
    m = m8[y:y + h, x:x + w, None].astype(np.uint16)
    p = plate[y:y + h, x:x + w].astype(np.uint16)
    f = face[y:y + h, x:x + w].astype(np.uint16)
    out[y:y + h, x:x + w] = ((p * (255 - m) + f * m + 127) // 255).astype(np.uint8)
    return out


def poisson_blend(plate: np.ndarray, face: np.ndarray, matte: np.ndarray, *, threshold: float = 0.5) -> np.ndarray:
    """Seamless clone (Perez et al. 2003, via OpenCV) of the face where ``matte > threshold``,
    then feathered with the matte so the clone boundary never shows as a hard edge."""
    _check(plate, face, matte)
    core = (matte > threshold).astype(np.uint8) * 255
    ys, xs = np.nonzero(core)
    if len(xs) < 16:
        return alpha_blend(plate, face, matte)
    pad = 2
    h, w = core.shape
    # seamlessClone needs the mask strictly inside the destination: clone on a padded canvas.
    big_plate = cv2.copyMakeBorder(plate, pad, pad, pad, pad, cv2.BORDER_REFLECT)
    big_face = cv2.copyMakeBorder(face, pad, pad, pad, pad, cv2.BORDER_REFLECT)
    big_core = cv2.copyMakeBorder(core, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    x0, x1, y0, y1 = xs.min() + pad, xs.max() + pad, ys.min() + pad, ys.max() + pad
    # OpenCV puts the mask's bounding box at centre - size // 2: choose centre so it stays in place.
    centre = (int(x0 + (x1 - x0 + 1) // 2), int(y0 + (y1 - y0 + 1) // 2))
    cloned = cv2.seamlessClone(big_face, big_plate, big_core, centre, cv2.NORMAL_CLONE)
    cloned = cloned[pad:pad + h, pad:pad + w]
    return alpha_blend(plate, cloned, matte)
