"""The face matte in aligned-crop space, from merge settings, landmarks and the model's mask."""

from __future__ import annotations

import cv2
import numpy as np

from doppel.merge.settings import REFERENCE_SIZE, MaskPolygon, MergeSettings
from doppel.ops.face import hull_mask
from doppel.ops.mask import combine, erode_blur


def region_hull(landmarks_crop: np.ndarray, size: int, settings: MergeSettings) -> np.ndarray:
    """The landmark hull of the settings' region, float32 ``(size, size)`` in [0, 1]."""
    return hull_mask(landmarks_crop, size, settings.mask_region)


def face_matte(landmarks_crop: np.ndarray, learned: np.ndarray | None, size: int,
               settings: MergeSettings, *, hull: np.ndarray | None = None) -> np.ndarray:
    """Combined, eroded and feathered matte, float32 ``(size, size)`` in [0, 1].

    ``learned`` is the model's mask ``(size, size)`` in [0, 1] (None when the model gives none).
    With a region other than the whole face, the learned mask is limited to that region's hull.
    """
    hull = region_hull(landmarks_crop, size, settings) if hull is None else hull
    mode = settings.mask_mode
    if mode == "learned" and settings.mask_region != "face":
        mode = "product"
    raw = combine(hull, learned, mode)
    scale = size / REFERENCE_SIZE
    return erode_blur(raw, settings.mask_erode * scale, settings.mask_blur * scale)


def apply_polygons(matte: np.ndarray, polygons: tuple[MaskPolygon, ...]) -> np.ndarray:
    """The matte with review's polygons applied in order: ``include`` raises it to 1 inside the polygon,
    ``exclude`` sets it to 0; edges are feathered by about 1 px at 128. ``matte``: float32 ``(S, S)``."""
    size = matte.shape[0]
    out: np.ndarray = matte.astype(np.float32, copy=True)
    sigma = max(size / 128.0, 0.8)
    for poly in polygons:
        pts = np.round(np.asarray(poly.points, dtype=np.float64) * size * 16).astype(np.int32)
        fill = np.zeros_like(out)
        cv2.fillPoly(fill, [pts], 1.0, lineType=cv2.LINE_AA, shift=4)
        fill = cv2.GaussianBlur(fill, (0, 0), sigma)
        out = np.maximum(out, fill) if poly.mode == "include" else out * (1.0 - fill)
    return out
