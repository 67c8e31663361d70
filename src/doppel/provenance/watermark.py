"""doppel's invisible watermark: a 32-bit render id in the luma of every frame merge writes.

Why doppel's own scheme: the library candidates were measured on this kind of machine
(``shared/anchors/watermark-baselines.md``): invisible-watermark's DWT-DCT reaches only 0.71 bit
accuracy before any attack and chance after H.264 CRF 28 + 50% downscale; its RivaGAN survives
that per frame but costs about 4.5 s per 720p frame, and neither handles crops. Merge has to mark
every frame of real work on a CPU, so doppel uses a fast spread-spectrum scheme built for the
attacks that matter (re-encoding, rescaling, reframing, mirroring, brightness/contrast) and for
detection over many frames of a clip.

API (what merge and verify call)::

    wm = Watermarker(render_payload(render_uid))    # payload: int in [0, 2**32)
    marked = wm.embed(frame)                       # RGB uint8 (H, W, 3) -> RGB uint8, same shape
    report = detect(frames)                        # Iterable of RGB uint8 frames -> WatermarkReport
    # (Watermarker.detect(frames) is the same function)

Two layouts, one payload code
-----------------------------
The payload and its CRC-16 go through a rate-1/2, K=7 convolutional code (:mod:`~doppel.provenance.wm_code`):
108 coded bits, decoded by soft-decision Viterbi. A fixed public key (anyone can check a doppel mark;
tamper evidence comes from the signed content credentials) spreads the *mark* (always +1) and the coded
bits over cells of the frame, each with a key sign. Each cell's value becomes a smooth bump (bilinear
between cell centres) added equally to R, G and B (luma only). Amplitude follows *improved spread
spectrum*: the host's own correlation with each field is measured and cancelled, so every field correlates
at exactly ``+T`` or ``±T``; it is spread by a detection-weight mask, capped per cell by a visibility model
(about 2 levels on a flat wall, more where texture masks it) and capped in RMS (``MAX_RMS``: PSNR >= 40 dB).

* **Layout 2, tiles** (:mod:`~doppel.provenance.wm_tiles`; every frame with a side of ``TILE_MIN`` pixels
  or more, so every video frame merge writes): cells ("chips") are squares of 1/80 of the frame height,
  and one 20 x 20 tile of them (184 mark chips, 2 per coded bit) repeats over the whole frame. Any part
  of the frame at least a tile (25% of the height) wide and high holds every chip, so detection needs
  no knowledge of where a crop was taken: it folds the residual into one tile under each hypothesis of
  scale (original height over the visible height, times any zoom: 0.96 to 1.8), rotation (±6 degrees)
  and mirroring, finds every translation at once by a circular correlation (FFT) with the mark chips,
  refines the best, and reads the mark's ``z`` and the coded bits from the chips at that geometry.
* **Layout 1, normalised grid** (:mod:`~doppel.provenance.wm_grid`, doppel's first): 64 x 64 cells in
  normalised frame coordinates, found after crops of up to 12% per axis by a search over crop
  rectangles. It now marks only images too small for tiles (training previews, contact-sheet faces,
  64-192 px), and :func:`detect` still tries it on every clip, so everything marked before layout 2
  reads as before.

*Decision and false-positive bound.* A clip is reported marked when, in either layout, the mark ``z`` at
the best geometry reaches that layout's threshold **and** the decoded word passes the CRC. On unmarked
content the decoded bits behave like fair coins, independent of the mark statistic (``bench/
bench_watermark.py`` records the null ``z`` of both layouts, the ones per bit and the CRC passes over its
unmarked trials), so a false detection needs a Gaussian tail beyond the threshold at one of the searched
geometries (union bound over them) *and* a chance CRC match (2^-16); :func:`false_positive_bound` adds
the two layouts' bounds, floored at ``FP_FLOOR``.

*The mark without its payload.* Locating the mark needs far less signal than decoding 48 bits: 184 of a
tile's 400 chips carry the one known mark, 2 carry each coded bit. After a small crop or a downscale of a
short clip the mark can stand at ``z`` 8-15 while the coded bits read at 80-88% (measured on the watermark
benchmark: too noisy for the code). Layout 2 then reports the mark found (``method`` ``"mark"``, ``payload``
None) once ``z`` reaches ``Z_PRESENCE``, where the union bound over the searched geometries alone
(:func:`mark_only_bound`, no CRC) is below 1e-9: the clip was made by doppel, though which render cannot be
read from the mark (the credentials, or ``--workspace``, may still say).

*Reading against known payloads.* A mark can be located (its ``z`` well above chance) and still be too
weak for its 32-bit payload to decode (a small crop, a downscale: few chips, noisy bits). When the payloads
that could be there are known (``doppel verify --workspace``: every render of that workspace),
:func:`match_candidates` tests each against the soft bits instead: no decoding, all the coded bits'
evidence at once, and a union bound over the candidates as the false-positive bound (reported found at
``CANDIDATE_FP``). The report says which way the payload was found (``method``).

*Measured* (``bench/bench_watermark.py``; every attack followed by H.264 CRF 28): see ``bench/results/``
and ``bench/README.md``. Operating range: the copy being checked needs roughly 240 px or more on its
short side; a reframed copy needs the kept part to be at least a tile wide and high (a quarter of the
original height: 35% of a 16:9 or square frame's width and 60% of its height are inside that). Chips
follow the frame height, so a portrait original (taller than wide) gets large chips, which compete with
more of the picture's own detail: marks on portrait frames read more weakly. Letterboxing a frame inside
a larger one, anamorphic stretches and rotations beyond 6 degrees are outside what is searched.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from doppel.provenance import wm_grid, wm_tiles
from doppel.provenance.wm_code import (
    CODE_BITS,
    CRC_BITS,
    INFO_BITS,
    PAYLOAD_BITS,
    crc16,
    decode,
    encode,
    render_payload,
)

__all__ = ["CANDIDATE_FP", "CODE_BITS", "CRC_BITS", "FP_FLOOR", "INFO_BITS", "MAX_RMS", "PAYLOAD_BITS", "STRENGTH",
           "TILE_MIN", "VERSION", "Z_PRESENCE", "Z_THRESHOLD", "WatermarkReport", "Watermarker", "crc16", "decode",
           "detect", "encode", "false_positive_bound", "mark_only_bound", "match_candidates", "render_payload"]

VERSION = 2
STRENGTH = 3.0
"""Target correlation ``T`` of each field, in luma levels per cell (0..255 scale)."""
MAX_RMS = 2.3
"""Cap on the RMS luma change of a frame: 20*log10(255/sqrt(2.3**2 + 1/12)) = 40.8 dB PSNR at worst."""
TILE_MIN = 240
"""Frames whose shorter side has at least this many pixels get layout 2 (tiles); smaller images layout 1."""
Z_THRESHOLD = 6.5
"""Layout 2's mark correlation needed (besides a CRC match) to report a clip as marked."""
Z_PRESENCE = 8.0
"""Layout 2's mark correlation at which the mark alone is reported found when its payload does not decode
(too few chips survived for 48 bits, or too much noise: a small crop, a downscale): the union bound over
the searched geometries is then below 1e-9, and unmarked footage has measured at most 6.1 (bench
watermark's 235 null trials, two runs). Such a report says *made by doppel* without saying which render."""
GRID_Z_THRESHOLD = wm_grid.Z_THRESHOLD
"""Layout 1's (6.0)."""
FP_FLOOR = 1e-12
"""The smallest false-positive probability reported (the tail model is not trusted beyond it)."""
CANDIDATE_FP = 1e-6
"""The largest false-positive bound at which a known candidate payload is reported found (1,000 candidates:
``t`` >= 6.6; one: 5.0)."""


def _tail(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def false_positive_bound(z: float, crc_checked: bool = True, *, layout: int = 2) -> float:
    """Upper bound on P(an unmarked clip reaches mark correlation ``z`` at some searched geometry of ``layout``
    and passes the CRC), plus the other layout's chance at its own threshold (detection tries both)."""
    crc = 2.0 ** -CRC_BITS if crc_checked else 1.0
    tiles_at, grid_at = (z, GRID_Z_THRESHOLD) if layout == 2 else (Z_THRESHOLD, z)
    bound = (min(1.0, wm_tiles.n_hypotheses() * _tail(tiles_at)) + min(1.0, wm_grid.n_hypotheses() * _tail(grid_at)))
    # The Gaussian model is checked against measured null statistics only so far out; claim no more than this.
    return max(min(1.0, bound * crc), FP_FLOOR)


def mark_only_bound(z: float) -> float:
    """Upper bound on P(an unmarked clip reaches layout 2's mark correlation ``z`` at some searched geometry),
    no CRC asked (a mark found without its payload), plus the chance of any CRC-checked detection."""
    tiles = min(1.0, wm_tiles.n_hypotheses() * _tail(z))
    return max(min(1.0, tiles + false_positive_bound(Z_PRESENCE)), FP_FLOOR)


def _apply(image: np.ndarray, d: np.ndarray) -> np.ndarray:
    """``image + round(d)`` on every channel, saturated: uint8 adds of the positive and negative parts (a
    mixed float/uint8 add costs four times as much at 1080p)."""
    pos = cv2.convertScaleAbs(cv2.threshold(d, 0.0, 0.0, cv2.THRESH_TOZERO)[1])
    neg = cv2.convertScaleAbs(cv2.threshold(d, 0.0, 0.0, cv2.THRESH_TOZERO_INV)[1])
    return cv2.subtract(cv2.add(image, cv2.merge([pos, pos, pos])), cv2.merge([neg, neg, neg]))


# -- embedding ----------------------------------------------------------------------------------------
class Watermarker:
    """Embeds one payload (an int in ``[0, 2**32)``, see :func:`render_payload`) in frames."""

    def __init__(self, payload: int, *, strength: float | None = None, layout: int | None = None) -> None:
        if layout not in (None, 1, 2):
            raise ValueError(f"watermark layout must be 1 or 2 (or None: by frame size), got {layout}")
        self.payload = int(payload)
        self.strength = float(STRENGTH if strength is None else strength)
        self.layout = layout
        self._target = np.concatenate([[1.0], encode(self.payload)]).astype(np.float32)  # mark, then code bits

    def delta(self, image: np.ndarray) -> np.ndarray:
        """The luma change (float32 (H, W)) that marks this frame: layout 2 (tiles) when its shorter side
        is at least ``TILE_MIN`` pixels, layout 1 otherwise (unless the marker was made for one layout)."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 (H, W, 3) image, got {image.shape} {image.dtype}")
        h, w = image.shape[:2]
        if self.layout == 2 or (self.layout is None and min(h, w) >= TILE_MIN):
            d = wm_tiles.upsample(wm_tiles.chip_amplitudes(image, self._target, self.strength), h, w)
        else:
            d = wm_grid.delta(image, self._target, self.strength)
        # Hard quality floor: never spend more than MAX_RMS (PSNR >= 40 dB with rounding), whatever the host.
        rms = float(cv2.norm(d, cv2.NORM_L2)) / math.sqrt(d.size)
        if rms > MAX_RMS:
            d *= MAX_RMS / rms
        return d

    def embed(self, image: np.ndarray) -> np.ndarray:
        """Mark one frame: RGB uint8 (H, W, 3) in, RGB uint8 of the same shape out."""
        return _apply(image, self.delta(image))

    def detect(self, frames: Iterable[np.ndarray]) -> WatermarkReport:
        """Detect a doppel mark in a clip's frames (see :func:`detect`); reports ``bit_accuracy`` against
        this marker's payload."""
        report = detect(frames)
        expected = encode(self.payload)
        if report.soft_bits is not None:
            report.bit_accuracy = float(np.mean(np.sign(np.array(report.soft_bits)) == expected))
        return report


# -- detection -----------------------------------------------------------------------------------------
@dataclass
class WatermarkReport:
    """What detection found in a clip (or a still image, one frame)."""

    detected: bool
    payload: int | None          # the decoded render payload when detected, else None
    confidence: float            # 1 - (false-positive bound of this observation); 0 when not detected
    frames_checked: int
    mark_z: float                # normalised correlation of the doppel mark at the best geometry
    crc_ok: bool
    crop: tuple[float, float, float, float]   # layout 1's best geometry: (left, right, top, bottom) fractions
    bit_margin: float            # mean |soft bit| / its noise std: how clearly the bits read
    false_positive_bound: float = 1.0        # P(an unmarked clip scores this well), see false_positive_bound()
    bit_accuracy: float | None = None        # against a known payload (benchmarks, tests)
    soft_bits: list[float] | None = None
    layout: int = 2                          # the layout these figures are from: 2 tiles, 1 normalised grid
    geometry: dict[str, float | bool] | None = None   # layout 2: scale, rotation (degrees), mirrored
    grid_z: float | None = None              # layout 1's mark z, when it was searched
    method: str = "decoded"                  # how it was found: "decoded" (blind), "candidates", or "mark"
    #                                          (the mark alone, its payload unreadable: payload None)
    candidates: int = 0                      # payloads tested when the blind read failed (see match_candidates)
    candidate_z: float | None = None         # the best candidate's correlation with the coded bits

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d.pop("soft_bits")
        return d


def _gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4) or image.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 (H, W, 3) image, got {image.shape} {image.dtype}")
    return cv2.cvtColor(np.ascontiguousarray(image[:, :, :3]), cv2.COLOR_RGB2GRAY).astype(np.float32)


class _Sums:
    """Running sums of a residual and its square over frames."""

    def __init__(self) -> None:
        self.total: np.ndarray | None = None
        self.square: np.ndarray | None = None

    def add(self, r: np.ndarray) -> None:
        if self.total is None or self.square is None or self.total.shape != r.shape:
            if self.total is not None:
                raise ValueError(f"frames of one clip must share a size: got {r.shape} after {self.total.shape}")
            self.total, self.square = r.copy(), r * r
        else:
            self.total += r
            self.square += r * r


def detect(frames: Iterable[np.ndarray], *, candidates: Sequence[int] = ()) -> WatermarkReport:
    """Detect a doppel watermark over a clip: ``frames`` are RGB uint8 ``(H, W, 3)`` of one geometry.

    Works on any number of frames (one, for a still image); more frames read more reliably. Tries layout 2
    (tiles) first, then layout 1 (the normalised grid of doppel's first releases). When the blind read
    fails and ``candidates`` (payloads: a workspace's renders) are given, tests each of them
    (:func:`match_candidates`).
    """
    report = _detect_blind(frames)
    if report.payload is not None or not candidates or report.soft_bits is None:
        return report
    payload, z, bound = match_candidates(np.asarray(report.soft_bits), candidates)
    report.candidates, report.candidate_z = len(set(candidates)), z
    if bound <= CANDIDATE_FP:
        report.detected, report.payload, report.method = True, payload, "candidates"
        report.false_positive_bound, report.confidence = bound, 1.0 - bound
    return report


def match_candidates(soft: np.ndarray, candidates: Sequence[int]) -> tuple[int, float, float]:
    """The candidate payload whose coded bits best match the soft bits of a clip: (payload, t, bound).

    For a candidate, each soft bit signed by the candidate's coded bit is one sample; ``t`` is their
    one-sample t statistic (mean over standard error). On content that does not carry the candidate the
    samples are centred on zero whatever the geometry the sync search chose (the coded bits' chips are not
    the sync chips) and whatever their spread (measured on unmarked footage it varies by a factor of two,
    which a fixed unit scale would turn into false matches), so ``t`` follows Student's t with
    ``CODE_BITS - 1`` degrees of freedom; for the payload that is there it grows with the mark's strength.
    ``bound`` is the union bound over the ``N`` distinct candidates, ``N * P(T >= t)``. No CRC and no
    decoding: it reads marks too weak to decode (a small crop, a downscale) when the payload is known, as
    a workspace's renders are when ``doppel verify --workspace`` asks "is this one of mine?"."""
    unique = sorted(set(int(c) for c in candidates))
    if not unique:
        raise ValueError("match_candidates needs at least one candidate payload")
    samples = np.stack([encode(c) for c in unique]) * np.asarray(soft, dtype=np.float64)
    k = samples.shape[1]
    t = samples.mean(axis=1) / (samples.std(axis=1, ddof=1) / math.sqrt(k) + 1e-12)
    best = int(np.argmax(t))
    bound = min(1.0, len(unique) * _t_tail(float(t[best]), k - 1))
    return unique[best], float(t[best]), max(bound, FP_FLOOR)


def _t_tail(t: float, dof: int) -> float:
    """P(T >= t) for Student's t with ``dof`` degrees of freedom (t > 0; 1 otherwise): the density
    integrated over [t, inf) after x = t / u, which puts the mass near u = 1."""
    if t <= 0:
        return 1.0
    u = np.linspace(1e-4, 1.0, 20001)
    x = t / u
    log_c = math.lgamma((dof + 1) / 2) - math.lgamma(dof / 2) - 0.5 * math.log(dof * math.pi)
    f = np.exp(log_c - (dof + 1) / 2 * np.log1p(x * x / dof)) * t / (u * u)
    return float(np.sum((f[1:] + f[:-1]) * np.diff(u)) / 2)


def _detect_blind(frames: Iterable[np.ndarray]) -> WatermarkReport:
    """:func:`detect` without candidates: find the mark, decode the payload, check the CRC."""
    tiles, grid = _Sums(), _Sums()
    n = 0
    search_tiles = True
    for image in frames:
        gray = _gray(image)
        search_tiles = search_tiles and min(gray.shape) >= wm_tiles.MIN_SEARCH
        if search_tiles:
            tiles.add(wm_tiles.search_residual(gray))
        grid.add(wm_grid.frame_residual(gray))
        n += 1
    if grid.total is None or grid.square is None:
        return WatermarkReport(False, None, 0.0, 0, 0.0, False, (0.0, 0.0, 0.0, 0.0), 0.0)
    report: WatermarkReport | None = None
    if search_tiles and tiles.total is not None and tiles.square is not None:
        z, soft, geo = wm_tiles.locate(tiles.total / n, tiles.square / n)
        report = _decide(z, soft, n, 2, Z_THRESHOLD)
        report.geometry = {"scale": round(geo.scale, 4), "rotation": round(geo.angle, 2), "mirrored": geo.mirrored}
        if report.detected:
            return report
    z1, soft1, crop = wm_grid.locate(grid.total / n, grid.square / n)
    old = _decide(z1, soft1, n, 1, GRID_Z_THRESHOLD)
    old.crop, old.grid_z = crop, z1
    if old.detected or report is None:
        return old
    report.grid_z = z1
    return report


def _decide(z: float, soft: np.ndarray, frames: int, layout: int, threshold: float) -> WatermarkReport:
    payload, crc_ok = decode(soft)
    decoded = bool(crc_ok and z >= threshold)
    bound = false_positive_bound(z, crc_checked=bool(crc_ok), layout=layout)
    method = "decoded"
    if not decoded and layout == 2 and z >= Z_PRESENCE:  # the mark is there; its 48 bits did not survive
        bound, method = mark_only_bound(z), "mark"
    detected = decoded or method == "mark"
    return WatermarkReport(detected, payload if decoded else None, 1.0 - bound if detected else 0.0, frames,
                           float(z), bool(crc_ok), (0.0, 0.0, 0.0, 0.0), float(np.mean(np.abs(soft))),
                           false_positive_bound=bound, soft_bits=[float(v) for v in soft], layout=layout,
                           method=method)
