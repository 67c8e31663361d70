"""Mask maths in aligned-crop space: landmark hulls per region, erode/dilate and feathering.

Masks are float32 ``(S, S)`` in [0, 1] (1 = replace). Landmarks are ``(N, 2)`` (x, y) crop pixels
in the iBUG 68-point order.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

from doppel.ops.align import BROWS, EYE_L, EYE_R, JAW, MOUTH_OUTER

Region = Literal["face", "eyes", "mouth", "eyes_mouth"]

FOREHEAD_LIFT = 0.12  # brows are raised by this fraction of the brow-to-chin height to cover the forehead


def _fill(size: int, polys: list[np.ndarray]) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    for pts in polys:
        hull = cv2.convexHull(np.round(pts * 16).astype(np.int32))
        cv2.fillConvexPoly(mask, hull, 255, lineType=cv2.LINE_AA, shift=4)
    return mask.astype(np.float32) / 255.0


def _grown(points: np.ndarray, factor: float) -> np.ndarray:
    centre = points.mean(0)
    return centre + (points - centre) * factor


def hull_mask(landmarks: np.ndarray, size: int, region: Region = "face") -> np.ndarray:
    """The landmark hull of ``region`` in an ``size`` x ``size`` crop, anti-aliased."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.ndim != 2 or lm.shape[0] < 68 or lm.shape[1] != 2:
        raise ValueError(f"expected landmarks of shape (>=68, 2), got {lm.shape}")
    if region == "face":
        brows = lm[BROWS].copy()
        height = np.linalg.norm(lm[8] - brows.mean(0))
        up = lm[27] - lm[8]
        up /= max(np.linalg.norm(up), 1e-6)
        brows += up * FOREHEAD_LIFT * height
        return _fill(size, [np.concatenate([lm[JAW], brows, lm[:68]])])
    polys: list[np.ndarray] = []
    if region in ("eyes", "eyes_mouth"):
        polys.append(_grown(np.concatenate([lm[EYE_L], lm[BROWS[:5]]]), 1.25))
        polys.append(_grown(np.concatenate([lm[EYE_R], lm[BROWS[5:]]]), 1.25))
    if region in ("mouth", "eyes_mouth"):
        polys.append(_grown(lm[MOUTH_OUTER], 1.35))
    if not polys:
        raise ValueError(f"unknown mask region {region!r}")
    return _fill(size, polys)


def erode_blur(mask: np.ndarray, erode: float, blur: float) -> np.ndarray:
    """Shrink (``erode`` > 0) or grow (< 0) by ``|erode|`` px, then feather over about ``blur`` px.

    The crop border is forced to 0 first so the matte never ends in a hard edge.
    """
    out = np.ascontiguousarray(mask, dtype=np.float32)
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


def combine(hull: np.ndarray, learned: np.ndarray | None, mode: Literal["hull", "learned", "product"]) -> np.ndarray:
    """The face mask of ``mode`` from a hull mask and the model's learned mask (both ``(S, S)``)."""
    if mode == "hull" or learned is None:
        return hull
    if mode == "learned":
        return learned
    if mode == "product":
        return hull * learned
    raise ValueError(f"unknown mask mode {mode!r}")
