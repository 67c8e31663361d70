"""Watermark scheme 2: one small tile of chips, repeated over the whole frame, found again after reframing.

(The embedder and the detector share this file's tables: they are one algorithm.)

*Layout.* Chips are squares of ``1/ROWS`` of the frame height, laid from
the frame's top-left corner. A fixed public key (``_KEY``) fills one ``TILE`` x ``TILE`` tile of chips
with signs ``s = ±1`` and fields: ``SYNC_CHIPS`` carry the mark (always +1), and each of the
``CODE_BITS`` coded bits gets ``(TILE**2 - SYNC_CHIPS) // CODE_BITS`` chips, shuffled over the tile.
The tile repeats across the frame, so any part of the frame that is at least one tile wide and high
holds every chip at least once, at a position the detector does not know.

*Embedding* is scheme 1's (improved spread spectrum over the frame's chips, per-chip weights and
visibility caps, an RMS cap), with the frame's chips, each belonging to its field through its
position in the tile. Smooth bumps: the chip grid is upsampled bilinearly to the frame.

*Detection.* Each frame's luma is resized to ``SEARCH_ROWS`` rows (keeping the aspect ratio), high-passed
(minus an edge-keeping bilateral estimate of the picture), scaled to unit variance and averaged over the
clip's frames. Then, for every hypothesis of scale (``SCALES``: the visible part of the original frame
height, so a crop keeping 60% of the height, or a 1.2x zoom, is a scale of 1/0.6 or 1.2), rotation
(``ANGLES``) and mirroring, every pixel is folded into one tile (its chip coordinates modulo ``TILE``);
the folded tile is correlated circularly with the key's sync chips (one FFT gives every translation at
once), and the correlation is normalised by its own spread over all translations. The best hypothesis is
refined, the residual is averaged per chip at the refined geometry, and the mark's normalised correlation
``z`` and the coded bits' soft values are read off as in scheme 1.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from doppel.provenance.wm_code import CODE_BITS

ROWS = 80
"""Chips per frame height."""
TILE = 20
"""Chips per tile side."""
BIT_CHIPS = 2
"""Chips per coded bit in a tile."""
SYNC_CHIPS = TILE * TILE - BIT_CHIPS * CODE_BITS
"""Chips of the mark in a tile (184): the rest carry the coded bits."""
EMBED_PX = 4
"""Working pixels per chip for the embedder's analysis of the frame."""
SEARCH_ROWS = 320
"""Rows of the detection working image (4 pixels per chip when nothing was rescaled)."""
HIGHPASS_CHIPS = 0.625
"""Gaussian sigma of the high-pass, in chips (5 px at 8 px per chip, as in scheme 1)."""
MIN_SEARCH = 96
"""Smallest side (pixels) of a frame the search runs on."""
SCALE_RANGE = (0.96, 1.8)
"""Searched scales: original frame height over the visible part of it (times any zoom)."""
SCALE_STEP = 0.018
ANGLE_RANGE = 6.0
"""Searched rotations, degrees either way."""
ANGLE_STEP = 1.0
BINS = 2
"""Fold bins per chip in the coarse search (4 in the refinement)."""
_KEY = b"doppel-watermark-v2-tiles"


@dataclass(frozen=True)
class TileLayout:
    signs: np.ndarray   # (TILE, TILE) float32 ±1
    field: np.ndarray   # (TILE, TILE) int: -1 = mark, k = coded bit k


@lru_cache(maxsize=1)
def layout() -> TileLayout:
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(_KEY).digest()[:8], "big"))
    n = TILE * TILE
    signs = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=n)
    fields = np.concatenate([np.full(SYNC_CHIPS, -1), np.repeat(np.arange(CODE_BITS), BIT_CHIPS)])
    rng.shuffle(fields)
    return TileLayout(signs.reshape(TILE, TILE), fields.reshape(TILE, TILE))


def grid_tables(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Signs (rows, cols) and field index + 1 (0 = mark, k + 1 = coded bit k) of a frame's chip grid."""
    lay = layout()
    ii = np.arange(rows)[:, None] % TILE
    jj = np.arange(cols)[None, :] % TILE
    return lay.signs[ii, jj], lay.field[ii, jj] + 1


def frame_grid(height: int, width: int) -> tuple[int, int]:
    """(working width in embed pixels, chip columns) of a frame."""
    ww = max(EMBED_PX, round(width * ROWS * EMBED_PX / height))
    return ww, math.ceil(ww / EMBED_PX)


def chip_cells(image: np.ndarray, cols: int) -> np.ndarray:
    """(ROWS * EMBED_PX, W) float32 -> (ROWS, cols) chip means, the right edge padded by replication."""
    pad = cols * EMBED_PX - image.shape[1]
    if pad > 0:
        image = cv2.copyMakeBorder(image, 0, 0, 0, pad, cv2.BORDER_REPLICATE)
    return image[:, : cols * EMBED_PX].reshape(ROWS, EMBED_PX, cols, EMBED_PX).mean(axis=(1, 3))


def upsample(cells: np.ndarray, height: int, width: int) -> np.ndarray:
    """(ROWS, cols) chip values -> (height, width) smooth bumps (bilinear between chip centres)."""
    cols = cells.shape[1]
    big = max(width, round(cols * height / ROWS))
    return cv2.resize(cells.astype(np.float32), (big, height), interpolation=cv2.INTER_LINEAR)[:, :width]


# -- detection ------------------------------------------------------------------------------------------
HOST_DIAMETER, HOST_SIGMA_PX, HOST_EDGE_LEVELS = 9, 3.0, 8.0
"""The detector's host estimate: a bilateral filter at the search resolution (4 px per chip). The mark's
bumps (a few levels) are far inside ``HOST_EDGE_LEVELS``, so they are smoothed away and stay in the
residual, while the picture's edges are kept in the estimate and so leave the residual. Against the
Gaussian high-pass the embedder uses, on the watermark benchmark's 28 footage clips (CRF 28 after the
attack): 35%-width crops read 68% -> 93%, 50% downscales 71% -> 79%, 35% x 60% crops 57% -> 61%; the
mark z of unmarked clips did not rise (max 5.7 -> 5.8, threshold 6.5)."""


def search_residual(gray: np.ndarray) -> np.ndarray:
    """Luma float32 (H, W) -> (SEARCH_ROWS, W') float32: the luma minus its edge-keeping host estimate,
    at unit variance."""
    h, w = gray.shape
    y = shrink(gray, max(8, round(w * SEARCH_ROWS / h)), SEARCH_ROWS)
    r = y - cv2.bilateralFilter(y, HOST_DIAMETER, HOST_EDGE_LEVELS, HOST_SIGMA_PX, borderType=cv2.BORDER_REFLECT)
    return r / (float(r.std()) + 1e-3)


@dataclass(frozen=True)
class Geometry:
    scale: float       # original frame height / visible height (x zoom)
    angle: float       # degrees
    mirrored: bool
    shift: tuple[float, float] = (0.0, 0.0)   # tile offset (u, v) in chips


def _scales() -> np.ndarray:
    lo, hi = SCALE_RANGE
    n = math.ceil(math.log(hi / lo) / math.log1p(SCALE_STEP))
    return lo * (1 + SCALE_STEP) ** np.arange(n + 1)


def _angles() -> np.ndarray:
    n = round(ANGLE_RANGE / ANGLE_STEP)
    return np.arange(-n, n + 1) * ANGLE_STEP


def n_hypotheses() -> int:
    """Geometries x translations the coarse search tries (for the false-positive bound)."""
    return len(_scales()) * len(_angles()) * 2 * (TILE * BINS) ** 2


class Search:
    """The coarse-to-fine geometry search over one clip's averaged residual."""

    def __init__(self, mean: np.ndarray, energy: np.ndarray) -> None:
        h, w = mean.shape
        self.px = SEARCH_ROWS / ROWS                       # pixels per chip at scale 1
        local = cv2.blur(energy, (round(self.px), round(self.px)))
        wgt = 1.0 / (local + 0.25 * float(np.median(local)) + 1e-9)
        self.wm = (wgt * mean).astype(np.float64).ravel()
        self.wgt = wgt.ravel()
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
        self.x = (xx - (w - 1) / 2).ravel() / self.px       # centred, in chips at scale 1
        self.y = (yy - (h - 1) / 2).ravel() / self.px
        self.mean, self.energy = mean, energy

    def coords(self, scale: float, angle: float, mirrored: bool) -> tuple[np.ndarray, np.ndarray]:
        """Chip coordinates (u, v) in the original frame's tile of every pixel, up to a translation."""
        t = math.radians(angle)
        c, s = math.cos(t) / scale, math.sin(t) / scale
        x = -self.x if mirrored else self.x
        return c * x - s * self.y, s * x + c * self.y

    def fold(self, u: np.ndarray, v: np.ndarray, bins: int) -> np.ndarray:
        n = TILE * bins
        iu = np.floor(u * bins).astype(np.int64) % n
        iv = np.floor(v * bins).astype(np.int64) % n
        return np.bincount(iv * n + iu, weights=self.wm, minlength=n * n).reshape(n, n)

    def correlate(self, folded: np.ndarray, bins: int) -> tuple[float, tuple[int, int]]:
        """Best normalised circular correlation with the sync chips, and its (row, col) shift in bins."""
        kern = _sync_kernel(bins)
        c = np.fft.irfft2(np.fft.rfft2(folded) * np.conj(np.fft.rfft2(kern)), s=folded.shape)
        med = float(np.median(c))
        spread = 1.4826 * float(np.median(np.abs(c - med))) + 1e-12
        k = int(np.argmax(c))
        return (float(c.flat[k]) - med) / spread, divmod(k, c.shape[1])

    def coarse(self) -> tuple[float, Geometry]:
        """The best (scale, angle, mirrored) on a half-resolution copy. A mirrored frame at angle -a folds
        into the unmirrored fold at angle a, flipped left to right: one fold serves both."""
        small = _Coarse(self.mean, self.energy)
        best = (-math.inf, Geometry(1.0, 0.0, False))
        for scale in _scales():
            for angle in _angles():
                folded = small.fold(float(scale), float(angle))
                for mirrored in (False, True):
                    z = small.correlate(folded, mirrored)
                    if z > best[0]:
                        best = (z, Geometry(float(scale), float(-angle if mirrored else angle), mirrored))
        return best

    def refine(self, geo: Geometry) -> Geometry:
        best = (-math.inf, geo)
        bins = 2 * BINS
        for ds in np.linspace(-SCALE_STEP, SCALE_STEP, 5):
            for da in np.linspace(-ANGLE_STEP / 2, ANGLE_STEP / 2, 5):
                g = Geometry(geo.scale * (1 + ds), geo.angle + da, geo.mirrored)
                u, v = self.coords(g.scale, g.angle, g.mirrored)
                z, (row, col) = self.correlate(self.fold(u, v, bins), bins)
                if z > best[0]:
                    # c[t] = sum_b F(b + t) K(b): the kernel's chip (0, 0) starts at fold bin (row, col)
                    best = (z, Geometry(g.scale, g.angle, g.mirrored, (col / bins, row / bins)))
        return best[1]

    def cells(self, geo: Geometry) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per chip instance: mean residual, mean energy and tile chip index (row * TILE + col)."""
        u, v = self.coords(geo.scale, geo.angle, geo.mirrored)
        cu = np.floor(u - geo.shift[0]).astype(np.int64)   # the kernel's chip (0, 0) starts at the shift
        cv = np.floor(v - geo.shift[1]).astype(np.int64)
        cu -= cu.min()
        cv -= cv.min()
        ncol = int(cu.max()) + 1
        idx = cv * ncol + cu
        count = np.bincount(idx)
        keep = count >= 0.5 * (self.px / geo.scale) ** 2
        r = np.bincount(idx, weights=self.mean.ravel())[keep] / count[keep]
        e = np.bincount(idx, weights=self.energy.ravel())[keep] / count[keep]
        cells = np.flatnonzero(keep)
        row, col = cells // ncol, cells % ncol
        lo_u = int(np.floor((u - geo.shift[0]).min()))
        lo_v = int(np.floor((v - geo.shift[1]).min()))
        chip = ((row + lo_v) % TILE) * TILE + (col + lo_u) % TILE
        return r, e, chip


class _Coarse:
    """The residual at half resolution (2 pixels per chip at scale 1) for the coarse search."""

    def __init__(self, mean: np.ndarray, energy: np.ndarray) -> None:
        h, w = mean.shape
        if w > 1.25 * h:  # the central part: as wide as it is high (more of a wide frame adds little)
            x0 = (w - round(1.25 * h)) // 2
            mean, energy = mean[:, x0:x0 + round(1.25 * h)], energy[:, x0:x0 + round(1.25 * h)]
        mean, energy = cv2.pyrDown(mean), cv2.pyrDown(energy)
        h, w = mean.shape
        px = SEARCH_ROWS / ROWS / 2
        local = cv2.blur(energy, (2, 2))
        self.wm = (mean / (local + 0.25 * float(np.median(local)) + 1e-9)).astype(np.float32).ravel()
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        self.x = (xx - (w - 1) / 2).ravel() / px
        self.y = (yy - (h - 1) / 2).ravel() / px
        n = TILE * BINS
        kern = _sync_kernel(BINS)
        self.kf = (np.conj(np.fft.rfft2(kern)), np.conj(np.fft.rfft2(kern[:, ::-1])))
        self.n = n

    def fold(self, scale: float, angle: float) -> np.ndarray:
        t = math.radians(angle)
        c, s = math.cos(t) * BINS / scale, math.sin(t) * BINS / scale
        iu = np.floor(c * self.x - s * self.y).astype(np.int64) % self.n
        iv = np.floor(s * self.x + c * self.y).astype(np.int64) % self.n
        return np.fft.rfft2(np.bincount(iv * self.n + iu, weights=self.wm, minlength=self.n ** 2)
                            .reshape(self.n, self.n))

    def correlate(self, folded: np.ndarray, mirrored: bool) -> float:
        c = np.fft.irfft2(folded * self.kf[int(mirrored)], s=(self.n, self.n))
        return (float(c.max()) - float(c.mean())) / (float(c.std()) + 1e-12)


@lru_cache(maxsize=4)
def _sync_kernel(bins: int) -> np.ndarray:
    lay = layout()
    k = np.where(lay.field < 0, lay.signs, 0.0)
    return np.kron(k, np.ones((bins, bins)))  # chip (i, j) covers bins [i*bins, (i+1)*bins) x [j*bins, ...)


def score(r: np.ndarray, e: np.ndarray, chip: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Mark z and per-field correlation and noise from chip-instance residuals (as scheme 1 scores cells)."""
    lay = layout()
    w = 1.0 / (e + 0.25 * float(np.median(e)) + 1e-9)
    field = lay.field.ravel()[chip] + 1
    sr = w * r * lay.signs.ravel()[chip]
    n = CODE_BITS + 1
    corr = np.bincount(field, weights=sr, minlength=n)
    noise = np.sqrt(np.bincount(field, weights=(w * r) ** 2, minlength=n)) + 1e-9
    return float(corr[0] / noise[0]), corr, noise


# -- embedding ------------------------------------------------------------------------------------------
WEIGHT_FLOOR = 0.25
MASK_POWER = 0.5
JND_BASE, JND_SLOPE, JND_BAND = 2.0, 1.0, 0.4
MAX_DELTA = 9.0


@lru_cache(maxsize=8)
def self_gain(height: int, width: int) -> float:
    """Per-chip gain of a unit-amplitude mark through frame size -> the embedder's analysis."""
    ww, cols = frame_grid(height, width)
    signs, _ = grid_tables(ROWS, cols)
    bump = upsample(signs, height, width)
    small = shrink(bump, ww, ROWS * EMBED_PX)
    hp = small - cv2.GaussianBlur(small, (0, 0), HIGHPASS_CHIPS * EMBED_PX, borderType=cv2.BORDER_REFLECT)
    return float((chip_cells(hp, cols) * signs).mean())


def shrink(gray: np.ndarray, width: int, height: int) -> np.ndarray:
    """Area-average a float32 image to (height, width): pyramid halvings first (OpenCV's area resize
    is slow at large non-integer ratios), then one area resize."""
    while gray.shape[0] >= 2 * height and gray.shape[1] >= 2 * width:
        gray = cv2.pyrDown(gray)
    return cv2.resize(gray, (width, height), interpolation=cv2.INTER_AREA)


def chip_amplitudes(image: np.ndarray, target: np.ndarray, strength: float) -> np.ndarray:
    """The signed luma amplitude of every chip of ``image`` (RGB uint8 (H, W, 3)), float32 (ROWS, cols),
    for per-field targets ``target`` (the mark first, then the ±1 coded bits)."""
    h, w = image.shape[:2]
    ww, cols = frame_grid(h, w)
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)  # BT.601 luma, as the mark is added
    y = shrink(gray, ww, ROWS * EMBED_PX)
    r = y - cv2.GaussianBlur(y, (0, 0), HIGHPASS_CHIPS * EMBED_PX, borderType=cv2.BORDER_REFLECT)
    band = chip_cells(r * r, cols)
    e = band + WEIGHT_FLOOR * float(np.median(band)) + 1e-9
    wgt = (1.0 / e).ravel()
    signs, field = grid_tables(ROWS, cols)
    signs, field = signs.ravel(), field.ravel()
    host = chip_cells(r, cols).ravel() * signs * wgt         # weighted host correlation per chip
    m = np.clip(np.power(wgt / float(np.median(wgt)), MASK_POWER), 0.25, 4.0)
    mask = m / math.sqrt(float((m * m).mean()))
    # Improved spread spectrum: per field, the amplitude that makes the frame's weighted correlation the target.
    n = CODE_BITS + 1
    wsum = np.bincount(field, weights=wgt, minlength=n)
    host_sum = np.bincount(field, weights=host, minlength=n)
    mask_sum = np.bincount(field, weights=mask * wgt, minlength=n)
    amp = (target * strength * wsum - host_sum) / (self_gain(h, w) * mask_sum + 1e-12)
    per_cell = amp[field] * mask
    fine = y - cv2.GaussianBlur(y, (0, 0), 0.75)
    texture = np.sqrt(chip_cells(fine * fine, cols)).ravel()
    cap = np.minimum(JND_BASE + JND_SLOPE * texture + JND_BAND * np.sqrt(band.ravel()), MAX_DELTA)
    return (np.clip(per_cell, -cap, cap) * signs).reshape(ROWS, cols).astype(np.float32)


def locate(mean: np.ndarray, energy: np.ndarray) -> tuple[float, np.ndarray, Geometry]:
    """The best geometry for a clip's mean residual and mean energy (from :func:`search_residual`):
    (mark z, soft coded bits, geometry)."""
    search = Search(mean, energy)
    _, geo = search.coarse()
    geo = search.refine(geo)
    z, corr, noise = score(*search.cells(geo))
    return z, corr[1:] / noise[1:], geo
