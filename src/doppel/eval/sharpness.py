"""Detail and full-reference fidelity of a face region, at the plate's native resolution.

Pure functions on arrays. Frames are uint8 RGB ``(H, W, 3)`` (or float in [0, 255]); a mask is
``(H, W)`` bool or float in [0, 1] (weights; > 0 counts). Everything is measured on luma
(ITU-R BT.601 grey), inside the mask, at the frame's own resolution.

- :func:`gradient_energy` / :func:`sharpness_ratio`: no-reference detail, the mean squared Sobel
  gradient magnitude inside the face, one image over another (1.0 = as much detail as the plate).
  Blur lowers it; but a sharpen filter or noise raise it too, so it is only read together with a
  full-reference comparison (the self-swap below) and temporal consistency.
- :func:`masked_ssim`, :func:`masked_psnr`, :func:`gmsd`: full-reference comparison of an estimate with
  the truth inside the mask (SSIM with the usual 11 px Gaussian window, sigma 1.5; GMSD of Xue et al.
  2014, gradient magnitude similarity deviation, 0 = identical gradients, larger = worse). Neither
  noise nor a sharpen filter can invent the right detail, so these catch what the ratio cannot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

SSIM_SIGMA = 1.5
GMSD_C = 170.0  # the paper's constant for 8-bit images
PSNR_PEAK = 255.0


def luma(image: np.ndarray) -> np.ndarray:
    """Grey float32 ``(H, W)`` in [0, 255] from RGB ``(H, W, 3)`` or grey ``(H, W)``."""
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 3:
        return cv2.cvtColor(a.astype(np.float32), cv2.COLOR_RGB2GRAY)
    if a.ndim == 2:
        return a.astype(np.float32)
    raise ValueError(f"expected an RGB (H, W, 3) or grey (H, W) image, got {a.shape}")


def _weights(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    m = np.asarray(mask, dtype=np.float32)
    if m.shape != tuple(shape[:2]):
        raise ValueError(f"mask is {m.shape}, expected {tuple(shape[:2])} to match the image")
    return np.clip(m, 0.0, 1.0)


def _box(weights: np.ndarray, pad: int) -> tuple[slice, slice] | None:
    ys, xs = np.nonzero(weights > 0)
    if len(ys) == 0:
        return None
    h, w = weights.shape
    return (slice(max(0, ys.min() - pad), min(h, ys.max() + pad + 1)),
            slice(max(0, xs.min() - pad), min(w, xs.max() + pad + 1)))


def _mean(values: np.ndarray, weights: np.ndarray) -> float:
    total = float(weights.sum())
    return float((values * weights).sum() / total) if total > 0 else math.nan


def sobel_magnitude(grey: np.ndarray) -> np.ndarray:
    """Sobel gradient magnitude of a grey float image (grey levels per pixel), float32 ``(H, W)``."""
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    return np.sqrt(gx * gx + gy * gy)


def gradient_energy(image: np.ndarray, mask: np.ndarray) -> float:
    """Mean squared Sobel gradient magnitude of the luma inside ``mask`` (NaN for an empty mask)."""
    w = _weights(mask, np.shape(image))
    box = _box(w, 2)
    if box is None:
        return math.nan
    g = sobel_magnitude(luma(np.asarray(image)[box]))
    return _mean(g * g, w[box])


def sharpness_ratio(image: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> float:
    """:func:`gradient_energy` of ``image`` over that of ``reference`` inside one ``mask``.

    1.0 = as much gradient energy as the reference (the plate); a blur lowers it. It has no
    reference for *which* detail: a sharpen filter or noise raise it as well (see the module note).
    """
    if np.shape(image)[:2] != np.shape(reference)[:2]:
        raise ValueError(f"images differ in size: {np.shape(image)} vs {np.shape(reference)}")
    ref = gradient_energy(reference, mask)
    return gradient_energy(image, mask) / ref if ref > 0 else math.nan


def masked_ssim(image: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """Mean SSIM map of the luma (Gaussian window, sigma 1.5) weighted by ``mask``, in [-1, 1]."""
    if np.shape(image) != np.shape(truth):
        raise ValueError(f"images differ in shape: {np.shape(image)} vs {np.shape(truth)}")
    w = _weights(mask, np.shape(image))
    box = _box(w, 6)
    if box is None:
        return math.nan
    x, y = luma(np.asarray(image)[box]).astype(np.float64), luma(np.asarray(truth)[box]).astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(a: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(a, (11, 11), SSIM_SIGMA, borderType=cv2.BORDER_REFLECT)

    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return _mean(s, w[box])


def masked_psnr(image: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """PSNR in dB of the RGB values inside ``mask`` (inf when identical there)."""
    if np.shape(image) != np.shape(truth):
        raise ValueError(f"images differ in shape: {np.shape(image)} vs {np.shape(truth)}")
    w = _weights(mask, np.shape(image))
    if not (w > 0).any():
        return math.nan
    d = np.asarray(image, np.float64) - np.asarray(truth, np.float64)
    se = (d * d).mean(axis=2) if d.ndim == 3 else d * d
    mse = _mean(se, w)
    return math.inf if mse <= 0 else 10.0 * math.log10(PSNR_PEAK**2 / mse)


def _prewitt(grey: np.ndarray) -> np.ndarray:
    k = np.array([[1, 0, -1], [1, 0, -1], [1, 0, -1]], np.float32) / 3.0
    gx = cv2.filter2D(grey, cv2.CV_32F, k, borderType=cv2.BORDER_REPLICATE)
    gy = cv2.filter2D(grey, cv2.CV_32F, k.T, borderType=cv2.BORDER_REPLICATE)
    return np.sqrt(gx * gx + gy * gy)


def gmsd(image: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """Gradient magnitude similarity deviation (Xue et al. 2014) of the luma inside ``mask``.

    Prewitt gradient magnitudes ``m``; similarity map ``(2 m_i m_t + c) / (m_i^2 + m_t^2 + c)``,
    ``c = 170``; GMSD is the (mask-weighted) standard deviation of that map: 0 when the gradients
    agree everywhere, larger when they differ in some places (missing detail, invented detail or
    noise alike). Measured at native resolution: the paper's 2x pre-downsampling is left out, so
    fine detail counts.
    """
    if np.shape(image) != np.shape(truth):
        raise ValueError(f"images differ in shape: {np.shape(image)} vs {np.shape(truth)}")
    w = _weights(mask, np.shape(image))
    box = _box(w, 2)
    if box is None:
        return math.nan
    mi, mt = _prewitt(luma(np.asarray(image)[box])), _prewitt(luma(np.asarray(truth)[box]))
    gms = (2 * mi * mt + GMSD_C) / (mi * mi + mt * mt + GMSD_C)
    ww = w[box]
    mean = _mean(gms, ww)
    return math.sqrt(max(0.0, _mean((gms - mean) ** 2, ww)))


@dataclass(frozen=True)
class Fidelity:
    """One frame's full-reference comparison inside the face."""

    ssim: float
    psnr: float
    gmsd: float
    sharpness: float  # gradient energy of the estimate over the truth's


def fidelity(image: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> Fidelity:
    """Every full-reference figure of one frame: :func:`masked_ssim`, :func:`masked_psnr`,
    :func:`gmsd` and :func:`sharpness_ratio` against the truth."""
    return Fidelity(masked_ssim(image, truth, mask), masked_psnr(image, truth, mask), gmsd(image, truth, mask),
                    sharpness_ratio(image, truth, mask))
