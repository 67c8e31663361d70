"""Steadiness over time: smoothing of colour statistics and mattes, shot-cut detection, flicker metric.

Everything here is a small stateful object fed one frame at a time, in frame order, with an
explicit ``reset`` (at shot cuts, or where the user switched smoothing off for a frame).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import cv2
import numpy as np

from doppel.ops.face import fill_hulls, landmarks68


class VectorSmoother:
    """Exponential moving average of a statistics vector: ``s_t = w s_{t-1} + (1 - w) x_t``.

    ``weight`` is the weight of the past (0 = no smoothing). A vector of another length (e.g. the
    colour mode changed between frames) restarts the average.
    """

    def __init__(self) -> None:
        self._state: np.ndarray | None = None

    def reset(self) -> None:
        self._state = None

    def update(self, x: np.ndarray, weight: float) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self._state is None or self._state.shape != x.shape or weight <= 0:
            self._state = x.copy()
        else:
            self._state = weight * self._state + (1.0 - weight) * x
        return self._state.copy()


class MatteSmoother:
    """Per-pixel temporal blend of the crop-space matte (the crop follows the smoothed alignment,
    so a pixel of the crop is the same spot of the face from frame to frame)."""

    def __init__(self) -> None:
        self._state: np.ndarray | None = None

    def reset(self) -> None:
        self._state = None

    def update(self, matte: np.ndarray, weight: float) -> np.ndarray:
        if self._state is None or self._state.shape != matte.shape or weight <= 0:
            self._state = matte.astype(np.float32, copy=True)
        else:
            self._state = (weight * self._state + (1.0 - weight) * matte).astype(np.float32)
        return self._state


class FaceSmoother:
    """Motion-aware temporal blend of the swapped face in crop space.

    Where the destination crop did not change since the previous frame (a still part of the face),
    the swap leans on its previous value by up to ``weight``; where the destination moved (mouth,
    eyes, a turn), the weight falls off as ``exp(-change / MOTION_SCALE)``, so motion is never
    smeared. This damps frame-to-frame noise of the model's output that the destination does not have.
    """

    MOTION_SCALE = 0.02  # mean abs RGB change (in [0, 1]) at which the weight falls to 1/e

    def __init__(self) -> None:
        self._face: np.ndarray | None = None
        self._plate: np.ndarray | None = None

    def reset(self) -> None:
        self._face = self._plate = None

    def update(self, face: np.ndarray, plate: np.ndarray, weight: float) -> np.ndarray:
        """``face`` and ``plate``: float32 ``(S, S, 3)`` in [0, 1]. Returns the smoothed face."""
        prev_face, prev_plate = self._face, self._plate
        out = face
        if weight > 0 and prev_face is not None and prev_plate is not None and prev_face.shape == face.shape:
            change = cv2.GaussianBlur(np.abs(plate - prev_plate).mean(axis=2), (0, 0), 1.0)
            w = (weight * np.exp(-change / self.MOTION_SCALE))[..., None].astype(np.float32)
            out = w * prev_face + (1.0 - w) * face
        self._face, self._plate = out, plate
        return out


class VisibleSmoother:
    """Motion-aware smoothing of the segmenter's visible-face mask in crop space.

    Where the plate is still, the mask leans on its past by up to ``weight`` (a flickering edge
    steadies); where the plate changed (an occluder arriving, moving or leaving), the weight falls
    off as ``exp(-change / MOTION_SCALE)``, so the new mask is taken at once and a hand is never
    painted over while the mask catches up. No spatial blur: occluder edges stay as hard as found.
    """

    MOTION_SCALE = 0.02  # mean abs RGB change (in [0, 1]) at which the weight falls to 1/e

    def __init__(self) -> None:
        self._mask: np.ndarray | None = None
        self._plate: np.ndarray | None = None

    def reset(self) -> None:
        self._mask = self._plate = None

    def update(self, mask: np.ndarray, plate: np.ndarray, weight: float) -> np.ndarray:
        """``mask``: float32 ``(S, S)`` in [0, 1]; ``plate``: float32 ``(S, S, 3)``. Returns the smoothed mask."""
        out = mask
        if weight > 0 and self._mask is not None and self._plate is not None and self._mask.shape == mask.shape:
            change = cv2.GaussianBlur(np.abs(plate - self._plate).mean(axis=2), (0, 0), 1.0)
            w = (weight * np.exp(-change / self.MOTION_SCALE)).astype(np.float32)
            out = w * self._mask + (1.0 - w) * mask
        self._mask, self._plate = out, plate
        return out


def frame_signature(frame: np.ndarray) -> np.ndarray:
    """A small normalised hue-saturation-value histogram of a uint8 RGB frame, for cut detection."""
    step = max(1, min(frame.shape[0], frame.shape[1]) // 64)
    small = np.ascontiguousarray(frame[::step, ::step])
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1, 2], None, [12, 4, 4], [0, 180, 0, 256, 0, 256]).ravel()
    return (hist / max(hist.sum(), 1.0)).astype(np.float32)


def signature_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Bhattacharyya distance between two signatures, in [0, 1] (0 = same colours)."""
    return float(cv2.compareHist(a, b, cv2.HISTCMP_BHATTACHARYYA))


class ShotCutDetector:
    """Flags a frame whose colour histogram differs from the previous frame's by more than ``threshold``."""

    def __init__(self) -> None:
        self._prev: np.ndarray | None = None
        self.last_distance = 0.0

    def update(self, frame: np.ndarray, threshold: float) -> bool:
        sig = frame_signature(frame)
        prev, self._prev = self._prev, sig
        if prev is None:
            self.last_distance = 0.0
            return False
        self.last_distance = signature_distance(prev, sig)
        return self.last_distance > threshold


@dataclass(frozen=True)
class Region:
    """A bool mask of part of a frame: ``mask`` covers rows ``y0..y0+h`` and columns ``x0..x0+w``."""

    mask: np.ndarray
    x0: int
    y0: int

    @classmethod
    def of(cls, full: np.ndarray) -> Region | None:
        """From a bool ``(H, W)`` mask of the whole frame (None when it is empty)."""
        x, y, w, h = cv2.boundingRect(full.astype(np.uint8))
        return cls(full[y:y + h, x:x + w].astype(bool), x, y) if w and h else None


def face_region(landmarks: np.ndarray, frame_shape: tuple[int, ...]) -> Region | None:
    """The convex hull of 68-point landmarks (frame pixels) clipped to the frame: where flicker counts."""
    pts = np.round(landmarks68(landmarks))  # whole pixels: a hard-edged region
    h, w = frame_shape[:2]
    x0, y0 = max(0, int(pts[:, 0].min())), max(0, int(pts[:, 1].min()))
    x1, y1 = min(w, int(pts[:, 0].max()) + 1), min(h, int(pts[:, 1].max()) + 1)
    if x1 <= x0 or y1 <= y0:
        return None
    mask = fill_hulls([pts - [x0, y0]], (y1 - y0, x1 - x0), antialias=False)
    return Region(mask > 0, x0, y0)


@dataclass
class FlickerMeter:
    """Frame-to-frame mean absolute change inside the face region, for input and output.

    Feed frames in order; ``region`` is the face in frame ``t``: a :class:`Region` or a bool ``(H, W)``
    mask (None where there is no face, which breaks the chain). A pair ``(t-1, t)`` counts when both frames
    have a region and no reset came between them; the change is measured inside region ``t``.
    """

    input_change: list[float] = field(default_factory=list)
    output_change: list[float] = field(default_factory=list)
    _prev: tuple[np.ndarray, np.ndarray] | None = None

    def reset(self) -> None:
        self._prev = None

    def update(self, inp: np.ndarray, out: np.ndarray, region: Region | np.ndarray | None) -> None:
        if isinstance(region, np.ndarray):
            region = Region.of(region)
        if region is None or not region.mask.any():
            self._prev = None
            return
        if self._prev is not None:
            sel, x0, y0 = region.mask, region.x0, region.y0
            y1, x1 = y0 + sel.shape[0], x0 + sel.shape[1]
            p_in, p_out = self._prev
            sel8 = np.ascontiguousarray(sel, dtype=np.uint8)
            for now, before, acc in ((inp, p_in, self.input_change), (out, p_out, self.output_change)):
                # uint8 absdiff and a masked mean: a tenth of the cost of an int16 NumPy diff on a 4K face
                diff = cv2.absdiff(np.ascontiguousarray(now[y0:y1, x0:x1]), np.ascontiguousarray(before[y0:y1, x0:x1]))
                acc.append(float(np.mean(cv2.mean(diff, mask=sel8)[:diff.shape[2] if diff.ndim == 3 else 1])))
        self._prev = (inp, out)

    @property
    def pairs(self) -> int:
        return len(self.input_change)

    @property
    def ratio(self) -> float | None:
        """Mean output change over mean input change (1.0 = as steady as the source), or None."""
        if not self.input_change:
            return None
        base = float(np.mean(self.input_change))
        return float(np.mean(self.output_change)) / max(base, 1e-6)


def flicker_ratio(inputs: Iterable[np.ndarray], outputs: Iterable[np.ndarray],
                  regions: Iterable[Region | np.ndarray | None]) -> float | None:
    """Flicker ratio of a whole clip: uint8 ``(H, W, 3)`` input and output frames with per-frame face
    regions (bool ``(H, W)`` or None). <= 1.2 is doppel's bar for a steady merge."""
    meter = FlickerMeter()
    for inp, out, region in zip(inputs, outputs, regions, strict=True):
        meter.update(inp, out, region)
    return meter.ratio
