"""Mask maths in aligned-crop space: erode/dilate, feathering, and combining the landmark hull
with the model's learned mask. (The hulls themselves are face geometry: :mod:`doppel.ops.face`.)

Masks are float32 ``(S, S)`` in [0, 1] (1 = replace).
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

MaskMode = Literal["hull", "learned", "product"]


def erode_blur(mask: np.ndarray, erode: float, blur: float) -> np.ndarray:
    """Shrink (``erode`` > 0) or grow (< 0) by ``|erode|`` px, then feather over about ``blur`` px.

    The crop border is forced to 0 first so the matte never ends in a hard edge.
    """
    out: np.ndarray = np.ascontiguousarray(mask, dtype=np.float32)
    radius = round(abs(erode))
    if radius:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        out = cv2.erode(out, kernel) if erode > 0 else cv2.dilate(out, kernel)
    out = out.copy()
    out[0, :] = out[-1, :] = 0
    out[:, 0] = out[:, -1] = 0
    if blur > 0:
        sigma = max(blur / 3.0, 0.5)
        out = cv2.GaussianBlur(out, (0, 0), sigma, borderType=cv2.BORDER_CONSTANT)
        # keep the edge inside the crop: fade to 0 over the blur width at the borders
        ramp = np.clip(np.minimum(np.arange(out.shape[0]), np.arange(out.shape[0])[::-1]) / max(blur, 1), 0, 1)
        out *= np.minimum.outer(ramp, ramp[: out.shape[1]]).astype(np.float32)
    return np.clip(out, 0.0, 1.0)


def combine(hull: np.ndarray, learned: np.ndarray | None, mode: MaskMode) -> np.ndarray:
    """The face mask of ``mode`` from a hull mask and the model's learned mask (both ``(S, S)``):
    ``hull``, ``learned`` (the hull when there is none) or their ``product``."""
    if mode == "hull" or learned is None:
        return hull
    if mode == "learned":
        return learned
    if mode == "product":
        return hull * learned
    raise ValueError(f"unknown mask mode {mode!r}")
