"""The segmenter's crops and moving masks and polygons between crops (pure maths, no torch).

A crop is cut from a frame by a ``(2, 3)`` frame -> crop similarity transform (see
:mod:`doppel.ops.align`); masks are float32 ``(S, S)`` in [0, 1].
"""

from __future__ import annotations

import cv2
import numpy as np

from doppel.ops.align import estimate_transform, invert, transform_points


def to_segmenter_crop(image: np.ndarray, landmarks: np.ndarray, size: int, face_type: str,
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut ``image`` (a frame or another crop; landmarks ``(68, 2)`` in its pixels) in the segmenter's
    framing. Returns the crop (same dtype), its landmarks and the image -> crop transform."""
    matrix = estimate_transform(landmarks, size, face_type)  # type: ignore[arg-type]
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    src = image
    if scale < 0.7:  # shrinking a lot: pre-blur so the warp does not alias
        src = cv2.GaussianBlur(image, (0, 0), 0.5 / scale)
    crop = cv2.warpAffine(src, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return crop, transform_points(landmarks, matrix), matrix


def to_crop(mask: np.ndarray, mask_matrix: np.ndarray, target_matrix: np.ndarray, size: int, *,
            outside: float = 1.0) -> np.ndarray:
    """A mask cut with ``mask_matrix`` (frame -> its crop) moved into the ``size`` crop of
    ``target_matrix`` (frame -> that crop). Where the mask's crop does not reach it is ``outside``."""
    # target pixel -> frame -> mask pixel, sampled with the inverse map
    full = np.vstack([mask_matrix, [0, 0, 1]]) @ np.vstack([invert(target_matrix), [0, 0, 1]])
    return cv2.warpAffine(np.ascontiguousarray(mask, np.float32), full[:2], (size, size),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=float(outside))


def map_polygon(points: np.ndarray, source_to_frame: np.ndarray, frame_to_crop: np.ndarray) -> np.ndarray:
    """Polygon points ``(K, 2)`` from one crop (``source_to_frame`` is frame -> that crop, as stored with
    a face) into another crop via the frame."""
    return transform_points(transform_points(points, invert(source_to_frame)), frame_to_crop)
