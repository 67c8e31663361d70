"""Watermark layout 1 (doppel's first): cells in normalised frame coordinates, found after small crops.

(The embedder and the detector share this file's tables: they are one algorithm. How it works, and what
was measured, is in :mod:`doppel.provenance.watermark`.) Since layout 2 (:mod:`doppel.provenance.wm_tiles`)
it marks only images too small for tiles (training previews, contact-sheet faces), and detection still
reads it in everything doppel marked before.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from doppel.provenance.wm_code import CODE_BITS
from doppel.provenance.wm_tiles import shrink

GRID = 64
"""Cells per side, in normalised frame coordinates."""
WORK = 512
"""Working resolution of detection (pixels per side; 8 per cell)."""
SYNC_CELLS = 1280
MAX_DELTA = 9.0
"""Cap on a cell's amplitude, in luma levels."""
HIGHPASS_SIGMA = 5.0
"""Gaussian sigma (working pixels) of the detection high-pass."""
MAX_CROP = 0.12
"""Largest crop, as a fraction of width or height (summed over both sides), searched for."""
Z_THRESHOLD = 6.0
"""Mark correlation needed (besides a CRC match) to report a clip as marked."""
_KEY = b"doppel-watermark-v1"


# -- the key -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Layout:
    signs: np.ndarray   # (GRID, GRID) float32 ±1
    field: np.ndarray   # (GRID, GRID) int: -1 = mark, k = code bit k


@lru_cache(maxsize=1)
def _layout() -> _Layout:
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(_KEY).digest()[:8], "big"))
    n = GRID * GRID
    signs = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=n)
    per_bit = (n - SYNC_CELLS) // CODE_BITS
    fields = np.concatenate([np.full(SYNC_CELLS, -1), np.repeat(np.arange(CODE_BITS), per_bit)])
    fields = np.concatenate([fields, np.full(n - fields.size, -1)])  # any remainder joins the mark
    rng.shuffle(fields)
    return _Layout(signs.reshape(GRID, GRID), fields.reshape(GRID, GRID))


@lru_cache(maxsize=1)
def _field_matrix() -> np.ndarray:
    """(CODE_BITS + 1, GRID*GRID) 0/1 matrix: row 0 the mark, row k+1 code bit k (read-only, cached)."""
    lay = _layout()
    f = lay.field.ravel()
    m = np.zeros((CODE_BITS + 1, f.size), dtype=np.float32)
    m[0, f < 0] = 1.0
    for k in range(CODE_BITS):
        m[k + 1, f == k] = 1.0
    m.setflags(write=False)
    return m


# -- detection front end (shared by embed and detect) -------------------------------------------------
def _luma_work(image: np.ndarray) -> np.ndarray:
    """RGB uint8 (H, W, 3) -> luma float32 (WORK, WORK), area-averaged."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)  # BT.601 luma, as the mark is added
    return shrink(gray, WORK, WORK)


def _highpass(y: np.ndarray) -> np.ndarray:
    return y - cv2.GaussianBlur(y, (0, 0), HIGHPASS_SIGMA, borderType=cv2.BORDER_REFLECT)


def _cells(r: np.ndarray) -> np.ndarray:
    """(WORK, WORK) -> (GRID, GRID) cell means."""
    return cv2.resize(r, (GRID, GRID), interpolation=cv2.INTER_AREA)


@lru_cache(maxsize=8)
def _self_gain(height: int, width: int) -> float:
    """Per-cell gain of a unit-amplitude mark through frame size -> detection front end."""
    lay = _layout()
    bump = cv2.resize(lay.signs, (width, height), interpolation=cv2.INTER_LINEAR)
    small = cv2.resize(bump, (WORK, WORK), interpolation=cv2.INTER_AREA)
    return float((_cells(_highpass(small)) * lay.signs).mean())


WEIGHT_FLOOR = 0.25


def _weights(energy: np.ndarray) -> np.ndarray:
    """Per-cell detection weight: inverse of the cell's residual energy (busy cells count less)."""
    e = energy + WEIGHT_FLOOR * float(np.median(energy)) + 1e-9
    return (1.0 / e).astype(np.float32)


MASK_POWER = 0.5
JND_BASE = 2.0
"""Largest amplitude (luma levels) a cell with no fine texture may carry: a flat wall or sky."""
JND_SLOPE = 1.0
"""Extra amplitude allowed per level of the cell's fine-texture RMS (texture masks the mark)."""


JND_BAND = 0.4
"""Extra amplitude allowed per level of the cell's own-scale RMS (soft shapes, defocused backgrounds)."""


def _visibility_cap(y: np.ndarray, band_energy: np.ndarray) -> np.ndarray:
    """Per-cell amplitude cap (GRID, GRID): ``JND_BASE + JND_SLOPE * fine-texture RMS + JND_BAND *
    cell-scale RMS``, at most ``MAX_DELTA``. A flat wall shows a low-frequency undulation from about
    2 levels; texture, and structure at the mark's own scale, hide more (contrast masking)."""
    fine = y - cv2.GaussianBlur(y, (0, 0), 1.5)
    texture = np.sqrt(_cells(fine * fine))
    cap = JND_BASE + JND_SLOPE * texture + JND_BAND * np.sqrt(band_energy)
    return np.minimum(cap, MAX_DELTA).astype(np.float32)



def _masking(weights: np.ndarray) -> np.ndarray:
    """Per-cell amplitude factor, (GRID, GRID), mean square 1.

    Detection weighs cells by the inverse of their residual energy, so amplitude is best spent
    where that weight is high (amplitude proportional to weight minimises the energy needed for a
    given weighted correlation); ``MASK_POWER`` < 1 tempers that towards uniform amplitude so flat
    areas do not carry all of it.
    """
    m = np.power(weights / float(np.median(weights)), MASK_POWER)
    m = np.clip(m, 0.25, 4.0)
    return (m / math.sqrt(float((m * m).mean()))).astype(np.float32).reshape(GRID, GRID)


def delta(image: np.ndarray, target: np.ndarray, strength: float) -> np.ndarray:
    """The luma change (float32 (H, W)) marking ``image`` (RGB uint8) with per-field targets ``target``
    (the mark first, then the ±1 coded bits), before any RMS cap."""
    h, w = image.shape[:2]
    lay = _layout()
    fields = _field_matrix()
    y = _luma_work(image)
    r = _highpass(y)
    band = _cells(r * r)
    wgt = _weights(band).ravel()
    host = (_cells(r) * lay.signs).ravel() * wgt            # weighted host correlation per cell
    mask = _masking(wgt).ravel()
    gain = _self_gain(h, w)
    # Improved spread spectrum: per field k, amplitude a_k such that the weighted correlation
    # sum_k(w s r) == target_k * T * sum_k(w).
    wsum = fields @ wgt
    host_sum = fields @ host
    mask_sum = fields @ (mask * wgt)
    amp = (target * strength * wsum - host_sum) / (gain * mask_sum)
    per_cell = (fields.T @ amp) * mask
    cap = _visibility_cap(y, band).ravel()
    per_cell = np.clip(per_cell, -cap, cap).reshape(GRID, GRID) * lay.signs
    return cv2.resize(per_cell.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)


# -- detection -----------------------------------------------------------------------------------------
def _hypotheses(step: float, limit: float) -> list[tuple[float, float]]:
    n = round(limit / step)
    return [(a * step, b * step) for a in range(n + 1) for b in range(n + 1 - a)]


def _remap(residual: np.ndarray, energy: np.ndarray,
           crop: tuple[float, float, float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Place maps seen through ``crop`` back in original-frame coordinates.

    Returns per-cell mean residual, per-cell mean energy and per-cell coverage (0..1), each (GRID, GRID).
    Works at any square map size (the coarse search runs at half the working size).
    """
    size = residual.shape[0]
    left, right, top, bottom = crop
    x0, x1 = round(left * size), round((1 - right) * size)
    y0, y1 = round(top * size), round((1 - bottom) * size)
    canvas = np.zeros((size, size), np.float32)
    power = np.zeros((size, size), np.float32)
    canvas[y0:y1, x0:x1] = cv2.resize(residual, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    power[y0:y1, x0:x1] = cv2.resize(energy, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    cover = np.maximum(_coverage(size, x0, x1, y0, y1), 1e-6)
    return _cells(canvas) / cover, _cells(power) / cover, cover


@lru_cache(maxsize=4096)
def _coverage(size: int, x0: int, x1: int, y0: int, y1: int) -> np.ndarray:
    valid = np.zeros((size, size), np.float32)
    valid[y0:y1, x0:x1] = 1.0
    return _cells(valid)


def _score(residual: np.ndarray, energy: np.ndarray,
           crop: tuple[float, float, float, float]) -> tuple[float, np.ndarray, np.ndarray]:
    """Mark z at one geometry, plus per-field correlations and per-field noise scale."""
    cells, energy, cover = _remap(residual, energy, crop)
    lay = _layout()
    use = (cover > 0.5).astype(np.float32)
    w = _weights(energy) * use
    r = cells
    fields = _field_matrix()
    sr = (w * r * lay.signs).ravel()
    corr = fields @ sr
    noise = np.sqrt(fields @ ((w * r).ravel() ** 2)) + 1e-9
    return float(corr[0] / noise[0]), corr, noise


def frame_residual(gray: np.ndarray) -> np.ndarray:
    """Luma float32 (H, W) -> (WORK, WORK) float32 high-passed at unit variance."""
    r = _highpass(shrink(gray, WORK, WORK))
    return r / (float(r.std()) + 1e-3)


def n_hypotheses() -> int:
    """Geometries the search tries (for the false-positive bound): a coarse grid, and refinement around the best."""
    return len(_hypotheses(0.02, MAX_CROP)) ** 2 * 2


def locate(mean: np.ndarray, energy: np.ndarray) -> tuple[float, np.ndarray, tuple[float, float, float, float]]:
    """The best crop geometry for a clip's mean residual and mean energy: (mark z, soft coded bits, crop)."""
    # Coarse search over crops (at half resolution), then refine around the best at full resolution.
    axis = _hypotheses(0.02, MAX_CROP)
    small, small_energy = cv2.pyrDown(mean), cv2.pyrDown(energy)
    coarse = max(((_score(small, small_energy, (lx, rx, ty, by))[0], (lx, rx, ty, by))
                  for lx, rx in axis for ty, by in axis))
    crop = coarse[1]
    z = _score(mean, energy, crop)[0]
    for step in (0.01, 0.005):
        cands = [tuple(max(0.0, c + d * step) for c, d in zip(crop, delta, strict=True))
                 for delta in _neighbours()]
        cands = [c for c in cands if c[0] + c[1] <= MAX_CROP + 0.02 and c[2] + c[3] <= MAX_CROP + 0.02]
        z2, crop2 = max((_score(mean, energy, c)[0], c) for c in cands)  # type: ignore[arg-type]
        if z2 > z:
            z, crop = z2, crop2  # type: ignore[assignment]
    _, corr, noise = _score(mean, energy, crop)
    return float(z), corr[1:] / noise[1:], tuple(round(float(c), 4) for c in crop)  # type: ignore[return-value]


@lru_cache(maxsize=1)
def _neighbours() -> list[tuple[int, int, int, int]]:
    d = (-1, 0, 1)
    return [(a, b, c, e) for a in d for b in d for c in d for e in d]
