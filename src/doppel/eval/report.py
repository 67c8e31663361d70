"""The eval report: one flat record of metrics (the JSON keys), per-frame rows, and a table view."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from doppel import __version__
from doppel.eval.selfswap import SELF_SWAP_BAR, SelfSwapReport
from doppel.io.atomic import write_text_atomic

REPORT_VERSION = 1


@dataclass
class FrameRow:
    """Measurements of one compared frame (None: not measured there; ``nme``/``pose_deg`` are None
    where the merged clip shows no face)."""

    frame: int
    nme: float | None
    pose_deg: float | None
    sim_src: float | None = None
    sim_dst: float | None = None
    nearest: str | None = None
    sharpness: float | None = None  # gradient energy inside the face, merged / original


@dataclass
class EvalReport:
    """What ``doppel eval`` measured. Similarities are cosines of dlib ResNet embeddings (in [-1, 1]);
    ``*_input`` keys measure the original clip the same way, as the baseline."""

    original: str
    merged: str
    src: str
    dst: str | None
    render: str | None
    frames: int
    frames_compared: int           # face found in both clips (and swapped, when the render says)
    frames_face_lost: int          # face in the original (and swapped) but none found there in the merge
    frames_embedded: int           # sampled for identity (every ``embed_every``-th); face lost there = failure
    embed_every: int
    id_sim_src: float | None
    id_sim_dst: float | None
    id_src_wins: float | None      # share of sampled frames with id_sim_src > id_sim_dst (no face: a loss)
    id_retrieval: float | None     # share of sampled frames whose nearest identity is src (no face: a miss)
    id_match_src: float | None     # share of sampled frames dlib itself calls the source (distance < 0.6)
    id_match_src_input: float | None
    id_sim_src_input: float | None
    id_sim_dst_input: float | None
    id_retrieval_input: float | None
    expression_nme: float | None    # mean over frames
    expression_nme_median: float | None
    pose_error_deg: float | None
    mouth_corr: float | None        # None when the original's mouth barely moves
    eye_corr: float | None
    mouth_std_input: float | None
    eye_std_input: float | None
    jitter_px: float | None
    jitter_px_input: float | None
    flicker_ratio: float | None    # information only: a blurred or frozen face scores well on it
    seam_score: float | None
    sharpness_ratio: float | None = None       # median over frames; 1 = the plate's detail (bar: >= 0.8)
    sharpness_p10: float | None = None
    sharpness_p90: float | None = None
    warp_error_ratio: float | None = None      # the temporal bar (<= 1.15): 1 = as steady as the plate
    warp_error_p95: float | None = None        # of the per-pair ratios (bar: <= 1.3)
    warp_error_normalised: float | None = None  # per unit of detail: blur lowers it much less
    warp_pairs: int = 0
    gaze_corr: float | None = None             # horizontal iris position, merged vs original
    gaze_err: float | None = None              # mean absolute difference, in eye widths
    self_swap: SelfSwapReport | None = None    # with --self-swap: the model's held-out source frames
    identities: list[str] = field(default_factory=list)
    sheet: str | None = None
    seconds: float = 0.0
    stages: dict[str, float] = field(default_factory=dict)
    per_frame: list[FrameRow] = field(default_factory=list)
    version: str = __version__
    report_version: int = REPORT_VERSION

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["self_swap"] = self.self_swap.to_dict() if self.self_swap is not None else None
        return _clean(data)

    def write(self, path: Path) -> None:
        write_text_atomic(path, json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")


def _clean(value: Any) -> Any:
    """NaN/inf to None (JSON has no NaN), floats rounded to 5 digits."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, float):
        return round(value, 5) if math.isfinite(value) else None
    return value


def _f(value: float | None, fmt: str = ".3f") -> str:
    return "--" if value is None or not math.isfinite(value) else format(value, fmt)


def table_rows(r: EvalReport) -> list[tuple[str, str, str, str]]:
    """``(metric, merged, original, what it means)`` rows for a table."""
    return [
        ("id_sim_src", _f(r.id_sim_src), _f(r.id_sim_src_input), f"cosine to {r.src!r}: higher = more source"),
        ("id_sim_dst", _f(r.id_sim_dst), _f(r.id_sim_dst_input), f"cosine to {r.dst!r}: lower = less destination"),
        ("id_src_wins", _f(r.id_src_wins, ".1%"), "", "frames more source than destination (bar: >= 90%)"),
        ("id_match_src", _f(r.id_match_src, ".1%"), _f(r.id_match_src_input, ".1%"),
         "frames the embedder itself calls the source (its same-person distance)"),
        ("id_retrieval", _f(r.id_retrieval, ".1%"), _f(r.id_retrieval_input, ".1%"),
         f"frames whose nearest of {len(r.identities)} identities is the source"),
        ("expression_nme", _f(r.expression_nme, ".4f"), "0", "landmark error / inter-ocular distance"),
        ("pose_error_deg", _f(r.pose_error_deg, ".2f"), "0", "head rotation difference, degrees"),
        ("mouth_corr", _f(r.mouth_corr), "1",
         f"mouth openness follows the original (input std {_f(r.mouth_std_input)})"),
        ("eye_corr", _f(r.eye_corr), "1", f"eye openness follows the original (input std {_f(r.eye_std_input)})"),
        ("gaze_corr", _f(r.gaze_corr), "1", f"iris position follows the original (mean error {_f(r.gaze_err)} "
                                            "eye widths)"),
        ("sharpness_ratio", f"{_f(r.sharpness_ratio, '.2f')} ({_f(r.sharpness_p10, '.2f')}-"
                            f"{_f(r.sharpness_p90, '.2f')})", "1",
         "detail inside the face, output / input, median (p10-p90) (bar: >= 0.8; a sharpen filter raises it too)"),
        ("warp_error_ratio", f"{_f(r.warp_error_ratio, '.2f')} (p95 {_f(r.warp_error_p95, '.2f')})", "1",
         "temporal bar: error along the original's optical flow, output / input (bar: <= 1.15, p95 <= 1.3)"),
        ("warp_error_norm", _f(r.warp_error_normalised, ".2f"), "1",
         "warp error per unit of detail (blur lowers it much less; a frozen face raises it)"),
        ("jitter_px", _f(r.jitter_px), _f(r.jitter_px_input), "landmark RMS 2nd difference, frame px"),
        ("flicker_ratio", _f(r.flicker_ratio), "1",
         "info: frame-to-frame change in the face, output / input (blur and frozen faces score low)"),
        ("seam_score", _f(r.seam_score), "1", "gradient on the mask edge, output / input (1 = invisible)"),
        *self_swap_rows(r.self_swap),
    ]


def self_swap_rows(s: SelfSwapReport | None) -> list[tuple[str, str, str, str]]:
    """Table rows of a self-swap (none without one)."""
    if s is None:
        return []
    verdict = "passes" if s.passes else "fails"
    return [
        ("self_swap_ssim", _f(s.ssim), "1", f"{s.frames} held-out source frames re-rendered vs the truth, face "
                                             f"only ({verdict} the bar: {SELF_SWAP_BAR})"),
        ("self_swap_psnr", _f(s.psnr, ".2f"), "inf", "dB inside the face"),
        ("self_swap_gmsd", _f(s.gmsd, ".4f"), "0", "gradient similarity deviation (blur, noise and halos raise it)"),
        ("self_swap_sharpness", f"{_f(s.sharpness_ratio, '.2f')} ({_f(s.sharpness_p10, '.2f')}-"
                                f"{_f(s.sharpness_p90, '.2f')})", "1", "detail vs the truth, median (p10-p90)"),
    ]
