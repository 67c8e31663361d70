"""Embedder variants of watermark layout 2, read by the unchanged detector, on the watermark benchmark's
footage clips and its hardest attacks (each followed by H.264 CRF 28).

    python research/wm_variants.py VARIANT [--quick]     # writes research/results/wm-VARIANT.json

Variants (see ``VARIANTS``) change only how the embedder spends its amplitude, so marks they make read with
the detector doppel ships; the one that wins becomes the embedder.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

import bench_watermark as B  # noqa: E402
from doppel.provenance import watermark as W  # noqa: E402
from doppel.provenance import wm_tiles as T  # noqa: E402
from doppel.provenance.wm_code import CODE_BITS  # noqa: E402

LONG = 270
"""With ``--verify-read``: frames of each real clip used (9 s at 30 fps)."""
ATTACKS = ("crf28", "half", "contrast", "reframe_9x16", "crop_w35", "crop_35x60")
_shipped = T.chip_amplitudes


def _amplitudes(image: np.ndarray, target: np.ndarray, strength: float, *, per_tile: float = 0.0,
                host: str = "gauss", lam: float = 1.0, lam_bits: float | None = None) -> np.ndarray:
    """``chip_amplitudes`` with the host cancellation computed per tile instance (``per_tile`` = share of the
    cancellation done per tile; the rest per frame) and the host measured by the detector's bilateral filter
    (``host='bilateral'``) instead of the embedder's Gaussian."""
    h, w = image.shape[:2]
    ww, cols = T.frame_grid(h, w)
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    y = T.shrink(gray, ww, T.ROWS * T.EMBED_PX)
    r = y - cv2.GaussianBlur(y, (0, 0), T.HIGHPASS_CHIPS * T.EMBED_PX, borderType=cv2.BORDER_REFLECT)
    band = T.chip_cells(r * r, cols)
    if host == "bilateral":
        r = y - cv2.bilateralFilter(y, T.HOST_DIAMETER, T.HOST_EDGE_LEVELS, T.HOST_SIGMA_PX,
                                    borderType=cv2.BORDER_REFLECT)
    e = band + T.WEIGHT_FLOOR * float(np.median(band)) + 1e-9
    wgt = (1.0 / e).ravel()
    signs, field = T.grid_tables(T.ROWS, cols)
    signs, field = signs.ravel(), field.ravel()
    hostc = T.chip_cells(r, cols).ravel() * signs * wgt
    m = np.clip(np.power(wgt / float(np.median(wgt)), T.MASK_POWER), 0.25, 4.0)
    mask = m / math.sqrt(float((m * m).mean()))
    n = CODE_BITS + 1
    tile = ((np.arange(T.ROWS)[:, None] // T.TILE) * math.ceil(cols / T.TILE)
            + np.arange(cols)[None, :] // T.TILE).ravel()
    gain = T.self_gain(h, w)

    def amps(group: np.ndarray, size: int, tgt: np.ndarray) -> np.ndarray:
        wsum = np.bincount(group, weights=wgt, minlength=size)
        lams = np.full(size, lam)
        if lam_bits is not None:
            lams[(np.arange(size) % n) != 0] = lam_bits
        host_sum = lams * np.bincount(group, weights=hostc, minlength=size)
        mask_sum = np.bincount(group, weights=mask * wgt, minlength=size)
        return (tgt * strength * wsum - host_sum) / (gain * mask_sum + 1e-12)

    frame_amp = amps(field, n, target)[field]
    if per_tile > 0:
        g = tile * n + field
        tiles = int(tile.max()) + 1
        tile_amp = amps(g, tiles * n, np.tile(target, tiles))[g]
        frame_amp = (1 - per_tile) * frame_amp + per_tile * tile_amp
    per_cell = frame_amp * mask
    fine = y - cv2.GaussianBlur(y, (0, 0), 0.75)
    texture = np.sqrt(T.chip_cells(fine * fine, cols)).ravel()
    cap = np.minimum(T.JND_BASE + T.JND_SLOPE * texture + T.JND_BAND * np.sqrt(band.ravel()), T.MAX_DELTA)
    return (np.clip(per_cell, -cap, cap) * signs).reshape(T.ROWS, cols).astype(np.float32)


VARIANTS = {
    "shipped": {},
    "tile50": {"per_tile": 0.5},
    "tile100": {"per_tile": 1.0},
    "bilateral": {"host": "bilateral"},
    "tile50-bilateral": {"per_tile": 0.5, "host": "bilateral"},
    "iss0": {"lam": 0.0},
    "iss50": {"lam": 0.5},
    "bits-iss0": {"lam_bits": 0.0},
    "tile100-bilateral": {"per_tile": 1.0, "host": "bilateral"},
    # New layouts (the detector changes with them: not readable by the shipped detector).
    "bits3": {"layout": {"BIT_CHIPS": 3}},
    "rows60": {"layout": {"ROWS": 60, "SEARCH_ROWS": 240}},
    # Detector variants (the shipped embedder): a second, finer refinement of the geometry.
    "finer": {"refine": 2},
    "finer3": {"refine": 3},
    "rows60-bits3": {"layout": {"ROWS": 60, "SEARCH_ROWS": 240, "BIT_CHIPS": 3}},
}


def _finer_refine(passes: int) -> None:
    """Refine the geometry ``passes`` times, each pass on a grid four times finer, reading at 8 bins per chip."""
    coarse_refine = T.Search.refine

    def refine(self: T.Search, geo: T.Geometry) -> T.Geometry:
        geo = coarse_refine(self, geo)
        ds_step, da_step, bins = T.SCALE_STEP / 4, T.ANGLE_STEP / 8, 8
        for _ in range(passes - 1):
            best = (-math.inf, geo)
            for ds in np.linspace(-ds_step, ds_step, 5):
                for da in np.linspace(-da_step, da_step, 5):
                    g = T.Geometry(geo.scale * (1 + ds), geo.angle + da, geo.mirrored)
                    u, v = self.coords(g.scale, g.angle, g.mirrored)
                    z, (row, col) = self.correlate(self.fold(u, v, bins), bins)
                    if z > best[0]:
                        best = (z, T.Geometry(g.scale, g.angle, g.mirrored, (col / bins, row / bins)))
            geo = best[1]
            ds_step, da_step = ds_step / 4, da_step / 4
        return geo

    T.Search.refine = refine  # type: ignore[method-assign]


def _relayout(**consts: int) -> None:
    """Patch layout 2's constants (embedder and detector alike) and drop what was cached from them."""
    for k, v in consts.items():
        setattr(T, k, v)
    T.SYNC_CHIPS = T.TILE * T.TILE - T.BIT_CHIPS * CODE_BITS
    for fn in (T.layout, T._sync_kernel, T.self_gain):
        fn.cache_clear()


def main() -> None:
    name = sys.argv[1]
    quick = "--quick" in sys.argv
    kw = dict(VARIANTS[name])
    if "refine" in kw:
        _finer_refine(kw.pop("refine"))
    if "layout" in kw:
        _relayout(**kw.pop("layout"))
    if kw:
        T.chip_amplitudes = lambda image, target, strength: _amplitudes(image, target, strength, **kw)
    rng = np.random.default_rng(20261124)
    footage, _ = B.clips(quick)
    read = 0
    if "--verify-read" in sys.argv:
        # Whole real clips (up to LONG frames) read as doppel verify reads: MAX_FRAMES spread over the clip.
        from doppel.io.video import read_frames
        from doppel.provenance.verify import MAX_FRAMES
        read = MAX_FRAMES
        footage = []
        for path in sorted([*B.MEDIA.glob("*.mp4"), *B.MEDIA.glob("base/*.mp4")]):
            frames = [f.image for f in read_frames(path, stop=LONG)]
            h, w = frames[0].shape[:2]
            if h > w:
                frames = [np.ascontiguousarray(f[(h - w) // 2:(h - w) // 2 + w]) for f in frames]
            footage.append((path.stem[:12], frames))
    rows: dict[str, dict[str, list[float]]] = {a: {"ok": [], "bits": [], "z": []} for a in ATTACKS}
    psnrs, t0 = [], time.time()
    for k, (clip, frames) in enumerate(footage):
        at = B.POSITIONS[k % len(B.POSITIONS)]
        payload = int(rng.integers(0, 2**32))
        wm = W.Watermarker(payload)
        marked = [wm.embed(f) for f in frames]
        psnrs.append(statistics.mean(B.psnr(m, f) for m, f in zip(marked, frames, strict=True)))
        written = B.encode_decode(marked, 18)
        for attack in ATTACKS:
            attacked = B.encode_decode(B.ATTACKS[attack](written, at, rng), 28)
            if read and len(attacked) > read:
                attacked = [attacked[i] for i in np.linspace(0, len(attacked) - 1, read).round().astype(int)]
            rep = wm.detect(attacked)
            rows[attack]["ok"].append(float(rep.detected and rep.payload == payload))
            rows[attack]["bits"].append(rep.bit_accuracy or 0.0)
            rows[attack]["z"].append(rep.mark_z)
        print(f"{name} {clip}: {sum(rows[a]['ok'][-1] for a in ATTACKS):.0f}/{len(ATTACKS)} "
              f"psnr {psnrs[-1]:.1f} ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
    out = {"variant": name, "kw": VARIANTS[name], "sync_chips": T.SYNC_CHIPS, "clips": len(footage),
           "psnr_min": min(psnrs),
           "psnr_median": statistics.median(psnrs),
           "attacks": {a: {"detected": float(np.mean(s["ok"])), "bits_mean": float(np.mean(s["bits"])),
                           "bits_min": float(np.min(s["bits"])), "z_median": float(np.median(s["z"])),
                           "z_min": float(np.min(s["z"]))} for a, s in rows.items()}}
    dest = ROOT / "research" / "results" / f"wm-{name}{'-quick' if quick else ''}{'-verify' if read else ''}.json"
    dest.write_text(json.dumps(out, indent=1))
    print(f"{name}: psnr min {out['psnr_min']:.2f}", *(f"{a} {s['detected']:.0%} bits {s['bits_mean']:.3f} "
          f"z {s['z_median']:.1f}/{s['z_min']:.1f}" for a, s in out["attacks"].items()), sep="\n")


if __name__ == "__main__":
    main()
