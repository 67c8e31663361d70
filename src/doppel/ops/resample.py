"""Resampling a face between the frame and a crop without aliasing on the way in or blur on the way out.

Cutting a small crop (a 96 px model's input) out of a large face (300-400 px in a 480-720p plate)
with one bilinear warp skips most pixels: the crop aliases, and the aliasing pattern changes with
every sub-pixel move of the alignment, so the model sees shimmering input that training never
showed it (training crops are area-downsampled from the extracted crops). :func:`cut_face` cuts at
about the face's own scale and then area-averages down. Measured through the whole merge
(``research/ablation.md``, ``q2-d18-d19-oracle96*``): a perfect 96 px model on the shared d18 -> d19
pair goes from a warp error ratio of 1.34 to about 1.0 and from a gaze correlation of 0.75 to 0.88.

Putting a face back (:func:`place_face`) stays bilinear. Bicubic keeps more of the face's gradient
energy (that perfect model's sharpness ratio 0.32 against 0.26, GMSD 0.089 against 0.094) but is less
steady (warp error ratio 1.05 against 0.96) and, on a barely trained model, moved review's glitch
ranking enough that the occluded frames of ``tests/test_review_real.py`` left its top five in 5 runs of
8 (3 of 3 held with bilinear). Sharpness has to come from a larger output, not from the interpolator.

Images are ``(H, W, C)`` or ``(H, W)``; a transform is a ``float64`` ``(2, 3)`` frame -> crop matrix.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from doppel.ops.align import transform_scale, warp_to_face, warp_to_frame

AREA_BELOW = 0.8  # crop pixels per frame pixel below which the crop is cut larger and area-averaged down


def cut_face(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """The aligned ``size`` x ``size`` crop of ``image`` under ``matrix``, area-averaged when the crop is
    smaller than the face in the frame (same dtype as ``image``)."""
    scale = transform_scale(matrix)
    if scale >= AREA_BELOW or scale <= 0:
        return warp_to_face(image, matrix, size)
    big = math.ceil(size / scale)
    # Area averaging puts crop pixel i at the centre of big pixels r i .. r i + r - 1 (r = big / size); cutting
    # the big crop with centres lined up (scaled_crop) keeps warp_to_face's convention (crop pixel i at frame
    # matrix^-1 (i)), so a face placed back with the same matrix lands where it was cut (a plain r x matrix
    # would move it (1 - 1/r) / 2 crop px).
    crop = warp_to_face(image, scaled_crop(matrix, big / size), big)
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


def place_face(face: np.ndarray, matrix: np.ndarray, frame_shape: tuple[int, ...]) -> np.ndarray:
    """An aligned face (``(S, S, C)``) in frame coordinates (``matrix``: frame -> crop), bilinear (see the
    module's note); pixels outside the crop are 0."""
    return warp_to_frame(face, matrix, frame_shape, interpolation=cv2.INTER_LINEAR)


def scaled_crop(matrix: np.ndarray, factor: float) -> np.ndarray:
    """The frame -> crop matrix of the same crop resampled ``factor`` x (``S`` -> ``factor S`` px) with pixel
    centres lined up, as an image resize (or a network upsampling with ``align_corners=False``) does: crop
    pixel ``i`` of the result sits at ``(i + 0.5) / factor - 0.5`` of the original crop."""
    out = np.asarray(matrix, np.float64) * factor
    out[:, 2] += (factor - 1) / 2
    return out
