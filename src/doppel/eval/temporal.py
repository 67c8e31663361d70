"""Temporal consistency of a merged clip against its original: warp error (Lai et al. 2018).

Optical flow (OpenCV's DIS, ``medium`` preset) is computed on the ORIGINAL frames only. For each
pair ``(t, t+1)``, frame ``t`` is warped onto ``t+1`` with that flow in both clips, and the mean
absolute error against frame ``t+1`` is taken inside the face mask, leaving out pixels where the
flow is unreliable (forward-backward check: occlusions, disocclusions, flow failures). The ratio
merged / original is 1.0 when the merge is as consistent over time as the footage.

What it can and cannot see. Temporal noise and flicker raise the error: the flow of the original
cannot explain them. But any low-detail face lowers it: a blurred face, and a frozen expression on a
smooth face, have little gradient for the flow's own residual misfit to act on. So the plain ratio
rewards blur, like any warp error. :attr:`WarpError.normalised_ratio` divides each clip's warp
error by its own mean gradient magnitude in the same pixels (error per unit of detail): blur lowers
it much less (a 1.5 px blur of the first 80 frames of d18: plain 0.62, normalised 0.87;
``research/warp_presets.json``), while a face whose content does not move the way the original moves
(frozen, or sliding) still raises it. Read the plain ratio together with the sharpness ratio.

Frames: uint8 RGB ``(H, W, 3)``; masks ``(H, W)`` bool or float (> 0.5 counts).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from doppel.eval.sharpness import luma, sobel_magnitude

FB_TOLERANCE = (0.01, 0.5)  # forward-backward check: |f + b|^2 < a (|f|^2 + |b|^2) + b (Sundaram et al. 2010)


def dis_flow(frm: np.ndarray, to: np.ndarray, preset: int = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM) -> np.ndarray:
    """DIS optical flow float32 ``(H, W, 2)`` from grey uint8 ``frm`` to ``to``: ``frm(p) ~ to(p + flow(p))``."""
    if frm.dtype != np.uint8 or to.dtype != np.uint8 or frm.ndim != 2 or frm.shape != to.shape:
        raise ValueError(f"expected two grey uint8 (H, W) frames of one size, got {frm.shape} {frm.dtype} and "
                         f"{to.shape} {to.dtype}")
    dis = cv2.DISOpticalFlow.create(preset)
    h, w = frm.shape
    return np.asarray(dis.calc(frm, to, np.zeros((h, w, 2), np.float32)), np.float32)


def warp_with(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``image`` resampled at ``p + flow(p)`` (bilinear, border replicated): pulls ``image`` onto the
    frame the flow starts from."""
    h, w = flow.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return cv2.remap(image, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def consistent(forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """Bool ``(H, W)``: where ``forward`` (t+1 -> t) and ``backward`` (t -> t+1, sampled where the
    forward flow lands) cancel, i.e. the flow is trustworthy and the pixel is visible in both frames."""
    back_at = warp_with(backward, forward)
    s = forward + back_at
    mag = (forward * forward).sum(-1) + (back_at * back_at).sum(-1)
    a, b = FB_TOLERANCE
    return (s * s).sum(-1) < a * mag + b


@dataclass
class WarpError:
    """Per-pair warp errors (mean absolute grey-level error in the face) of both clips, and the
    mean gradient magnitudes over the same pixels for :attr:`normalised_ratio`."""

    original: list[float] = field(default_factory=list)
    merged: list[float] = field(default_factory=list)
    detail_original: list[float] = field(default_factory=list)
    detail_merged: list[float] = field(default_factory=list)

    @property
    def pairs(self) -> int:
        return len(self.original)

    @property
    def ratio(self) -> float | None:
        """Mean merged warp error over mean original warp error (1.0 = as consistent as the footage)."""
        if not self.original:
            return None
        return float(np.mean(self.merged)) / max(float(np.mean(self.original)), 1e-6)

    def per_pair(self, floor: bool = True) -> np.ndarray:
        """Per-pair ratios merged / original. With ``floor``, the original's error is floored at its
        median over the clip: on near-still pairs it is a fraction of a grey level, and the ratio would
        measure the video encoder: re-encoding the original frames of the still studio clip d18 alone
        (H.264, CRF 18) gives a mean ratio of 1.09, a raw p95 of 1.47 and a floored one of 1.25, where the
        original's error is half a grey level (``research/ablation.md``)."""
        o, m = np.asarray(self.original), np.asarray(self.merged)
        base = np.maximum(o, float(np.median(o))) if floor and len(o) else np.maximum(o, 1e-3)
        return m / base

    @property
    def p95(self) -> float | None:
        """95th percentile of the per-pair ratios (original's error floored at its median)."""
        return float(np.percentile(self.per_pair(), 95)) if self.original else None

    @property
    def p95_raw(self) -> float | None:
        """95th percentile of the raw per-pair ratios."""
        return float(np.percentile(self.per_pair(False), 95)) if self.original else None

    @property
    def normalised_ratio(self) -> float | None:
        """:attr:`ratio` over the ratio of mean gradient magnitudes (merged / original) in the same
        pixels: warp error per unit of detail. A blur lowers it much less; a face that does not move
        like the original raises it."""
        if not self.original:
            return None
        detail = float(np.mean(self.detail_merged)) / max(float(np.mean(self.detail_original)), 1e-6)
        return self.ratio / max(detail, 1e-6)  # type: ignore[operator]


class WarpErrorMeter:
    """Feed frames in order: ``update(original_t, merged_t, mask_t)``; ``None`` for the mask (no face
    there) or :meth:`reset` (a shot cut) breaks the chain. Flow is computed on the originals only."""

    def __init__(self, preset: int = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM) -> None:
        self.preset = preset
        self.result = WarpError()
        self._prev: tuple[np.ndarray, np.ndarray] | None = None

    def reset(self) -> None:
        self._prev = None

    def update(self, original: np.ndarray, merged: np.ndarray, mask: np.ndarray | None) -> None:
        if np.shape(original) != np.shape(merged):
            raise ValueError(f"frames differ in shape: {np.shape(original)} vs {np.shape(merged)}")
        if mask is None or not (np.asarray(mask) > 0.5).any():
            self._prev = None
            return
        go, gm = luma(original), luma(merged)
        if self._prev is not None:
            self._pair(self._prev, (go, gm), np.asarray(mask) > 0.5)
        self._prev = (go, gm)

    def _pair(self, prev: tuple[np.ndarray, np.ndarray], now: tuple[np.ndarray, np.ndarray], sel: np.ndarray) -> None:
        (po, pm), (no, nm) = prev, now
        ys, xs = np.nonzero(sel)
        pad = 24
        h, w = sel.shape
        y0, y1 = max(0, ys.min() - pad), min(h, ys.max() + pad + 1)
        x0, x1 = max(0, xs.min() - pad), min(w, xs.max() + pad + 1)
        box = (slice(y0, y1), slice(x0, x1))
        a8 = np.clip(no[box] + 0.5, 0, 255).astype(np.uint8)
        b8 = np.clip(po[box] + 0.5, 0, 255).astype(np.uint8)
        fwd = dis_flow(a8, b8, self.preset)   # t+1 -> t: now(p) ~ prev(p + fwd(p))
        bwd = dis_flow(b8, a8, self.preset)
        valid = sel[box] & consistent(fwd, bwd)
        if valid.sum() < 16:
            return
        for now_img, prev_img, errs, details in ((no, po, self.result.original, self.result.detail_original),
                                                 (nm, pm, self.result.merged, self.result.detail_merged)):
            warped = warp_with(prev_img[box], fwd)
            errs.append(float(np.abs(now_img[box] - warped)[valid].mean()))
            details.append(float(sobel_magnitude(now_img[box])[valid].mean()))


def warp_error(originals: list[np.ndarray], merged: list[np.ndarray], masks: list[np.ndarray | None]) -> WarpError:
    """:class:`WarpError` of two whole clips (uint8 RGB frames in order) with per-frame face masks."""
    if not len(originals) == len(merged) == len(masks):
        raise ValueError(f"need one merged frame and one mask per original frame, got {len(originals)}, "
                         f"{len(merged)} and {len(masks)}")
    meter = WarpErrorMeter()
    for o, m, k in zip(originals, merged, masks, strict=True):
        meter.update(o, m, k)
    return meter.result
