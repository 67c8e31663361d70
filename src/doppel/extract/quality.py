"""Image-quality scores of aligned faces."""

from __future__ import annotations

import cv2
import numpy as np


def blur_score(face: np.ndarray) -> float:
    """Variance of the Laplacian of the aligned face in grayscale (higher is sharper).

    ``face``: uint8 RGB ``(S, S, 3)`` or gray ``(S, S)``. Only the central 3/4 is scored so that
    the replicated border and background matter less. Scores compare between crops of one size.
    """
    if face.dtype != np.uint8 or face.ndim not in (2, 3):
        raise ValueError(f"expected a uint8 image, got shape {face.shape} dtype {face.dtype}")
    gray = cv2.cvtColor(face, cv2.COLOR_RGB2GRAY) if face.ndim == 3 else face
    h, w = gray.shape
    core = gray[h // 8: h - h // 8, w // 8: w - w // 8]
    return float(cv2.Laplacian(core, cv2.CV_64F).var())
