"""Self-swap fidelity: a model re-rendering its own source's held-out frames, compared with the truth.

Training records the source faces it held out (``train.json``'s ``holdout``, runs of >= 12 frames no
step trained on; see :meth:`doppel.train.data.FaceSet.split`). Merged into the source's own clip as
if the source were the destination, those frames have a right answer: the original frame. Inside
the face (:func:`doppel.eval.metrics.measure_mask`), at the clip's native resolution, each re-rendered
frame is compared with it by :func:`doppel.eval.sharpness.fidelity`: SSIM, PSNR, GMSD and the
sharpness ratio. A blur loses on all four; a sharpen filter or noise raise the sharpness ratio but
cannot invent the right detail, so SSIM, GMSD and PSNR do not follow (``tests/test_eval_quality_metrics.py``).

:func:`compare` takes the two clips and the truth's landmarks by frame; finding the held-out frames
and rendering them is :func:`doppel.workflow.evaluate.self_swap`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from doppel.core.errors import InputError, NoFaceError
from doppel.core.progress import ProgressFn, no_progress
from doppel.eval import metrics, sharpness
from doppel.eval.sheet import contact_sheet, face_crop
from doppel.io.atomic import atomic_path
from doppel.io.image import write_image
from doppel.io.video import probe, read_frames
from doppel.provenance.watermark import Watermarker, render_payload

# The bar for a self-swap (#12): structure close to the truth, with about the truth's detail.
SSIM_BAR = 0.85
SHARPNESS_BAND = (0.8, 1.25)
SELF_SWAP_BAR = f"SSIM >= {SSIM_BAR}, sharpness in [{SHARPNESS_BAND[0]}, {SHARPNESS_BAND[1]}]"
SHEET_COLUMNS = 6
SHEET_TILE = 320  # px: about 100 % for a face 300-400 px across (the landmarks' box x 1.4)


@dataclass
class SelfSwapFrame:
    frame: int
    ssim: float
    psnr: float
    gmsd: float
    sharpness: float


@dataclass
class SelfSwapReport:
    """The held-out frames of ``clip`` re-rendered (``rerendered``) and compared with the truth: means over
    frames of SSIM, PSNR (dB) and GMSD (0 = the truth's gradients), the median sharpness ratio (1 = the
    truth's detail) with its 10th and 90th percentiles."""

    model: str
    clip: str
    rerendered: str
    frames: int
    ssim: float | None
    psnr: float | None
    gmsd: float | None
    sharpness_ratio: float | None
    sharpness_p10: float | None
    sharpness_p90: float | None
    sheet: str | None = None
    render: str | None = None
    per_frame: list[SelfSwapFrame] = field(default_factory=list)

    @property
    def passes(self) -> bool:
        """SSIM >= 0.85 with the sharpness ratio in [0.8, 1.25] (blurred and over-sharpened faces both fail)."""
        lo, hi = SHARPNESS_BAND
        return (self.ssim is not None and self.sharpness_ratio is not None and self.ssim >= SSIM_BAR
                and lo <= self.sharpness_ratio <= hi)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passes": self.passes}


def compare(original: Path, rerendered: Path, landmarks: Mapping[int, np.ndarray], *, model: str,
            render: str | None = None, sheet: Path | None = None, progress: ProgressFn = no_progress
            ) -> SelfSwapReport:
    """Compare the frames of ``rerendered`` listed in ``landmarks`` (frame index -> the truth's ``(68, 2)``
    frame landmarks) with the same frames of ``original``; other frames are skipped. The contact sheet
    (truth over re-render) goes to ``sheet``. Raises ``InputError`` when the clips differ in size or
    length, ``NoFaceError`` when no listed frame has a face to measure."""
    a, b = probe(original), probe(rerendered)
    if (a.width, a.height, a.frame_count) != (b.width, b.height, b.frame_count):
        raise InputError(f"is {b.width}x{b.height}, {b.frame_count} frames; the original is {a.width}x{a.height}, "
                         f"{a.frame_count} frames", path=rerendered)
    wanted = sorted(i for i in landmarks if 0 <= i < a.frame_count)
    show = {wanted[k] for k in np.linspace(0, len(wanted) - 1, min(SHEET_COLUMNS, len(wanted))).round().astype(int)
            } if wanted else set()
    rows: list[SelfSwapFrame] = []
    tiles: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for n, (fa, fb) in enumerate(zip(read_frames(original), read_frames(rerendered), strict=True), 1):
        progress(n, a.frame_count)
        lm = landmarks.get(fa.index)
        if lm is None:
            continue
        mask = metrics.measure_mask(lm, fa.image.shape)
        if not mask.any():
            continue
        f = sharpness.fidelity(fb.image, fa.image, mask)
        rows.append(SelfSwapFrame(fa.index, f.ssim, f.psnr, f.gmsd, f.sharpness))
        if sheet is not None and fa.index in show:
            x0, y0 = np.asarray(lm).min(0)
            x1, y1 = np.asarray(lm).max(0)
            box = (float(x0), float(y0), float(x1), float(y1))
            tiles[fa.index] = (face_crop(fa.image, box, margin=1.4, size=SHEET_TILE),
                               face_crop(fb.image, box, margin=1.4, size=SHEET_TILE))
    if not rows:
        raise NoFaceError("none of the held-out frames shows a face to compare", path=original)
    report = summarise(rows, model=model, clip=str(original), rerendered=str(rerendered), render=render)
    if sheet is not None and tiles:
        _write_sheet(sheet, tiles, {r.frame: r for r in rows}, report)
        report.sheet = str(sheet)
    return report


def summarise(rows: list[SelfSwapFrame], *, model: str, clip: str, rerendered: str, render: str | None = None
              ) -> SelfSwapReport:
    """The report of per-frame rows (means; the median sharpness ratio, as eval reports the swap's)."""
    def mean(values: list[float]) -> float | None:
        finite = [v for v in values if math.isfinite(v)]
        return float(np.mean(finite)) if finite else None

    sharp = [r.sharpness for r in rows if math.isfinite(r.sharpness)]
    pct = (lambda q: float(np.percentile(sharp, q))) if sharp else (lambda q: None)
    return SelfSwapReport(model=model, clip=clip, rerendered=rerendered, frames=len(rows),
                          ssim=mean([r.ssim for r in rows]), psnr=mean([r.psnr for r in rows]),
                          gmsd=mean([r.gmsd for r in rows]), sharpness_ratio=pct(50), sharpness_p10=pct(10),
                          sharpness_p90=pct(90), render=render, per_frame=rows)


def _write_sheet(path: Path, tiles: dict[int, tuple[np.ndarray, np.ndarray]], rows: dict[int, SelfSwapFrame],
                 report: SelfSwapReport) -> None:
    order = sorted(tiles)
    labels = [f"#{i} ssim {rows[i].ssim:.2f} sh {rows[i].sharpness:.2f}" for i in order]
    # Each re-rendered face carries the render's mark itself, as eval's sheet does.
    mark = Watermarker(render_payload(report.render or f"self-swap:{Path(report.rerendered).name}")).embed
    sheet = contact_sheet([tiles[i][0] for i in order], [mark(tiles[i][1]) for i in order], labels,
                          top_label="truth (held out)",
                          title=f"doppel self-swap: {report.model}, {report.frames} held-out frames, SSIM "
                                f"{report.ssim or 0:.3f}, sharpness {report.sharpness_ratio or 0:.2f}")
    with atomic_path(path) as tmp:
        write_image(tmp, sheet)
