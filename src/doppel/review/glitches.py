"""Glitch scores: per merged frame, how likely it gives the fake away, and why.

Input is one :class:`Measure` per frame of a render (see :mod:`doppel.review.analyse`, which
measures them) plus each frame's face mask in aligned-crop space. Each *signal* turns the
measures into one raw value per frame (a deviation from the frame's neighbours in the same shot,
or a disagreement with the plate); each raw value becomes a robust z-score against the whole
render (median and MAD, with a floor on the spread so that a perfectly steady render does not
turn noise into alarms). A frame's score is the root of the sum of its squared z-scores of at
least :data:`REASON_Z`; its reasons are those signals, strongest first, with their values.

Scores are comparable between renders: a score of 4 means about four robust standard deviations
away from what this render usually does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from doppel.review.features import mask_iou
from doppel.store import Workspace

WINDOW = 7  # neighbours on each side that define a frame's "usual" (within one shot)
REASON_Z = 2.0  # a signal counts towards the score (and is listed as a reason) from this z up
FLAG_SCORE = 4.0  # frames scoring at least this are flagged
Z_CAP = 50.0
DROPOUT_Z = 8.0  # a frame left unswapped between swapped ones in the same shot


@dataclass(frozen=True)
class Signal:
    name: str
    floor: float  # smallest spread used for the z-score, in the signal's own unit
    what: str


SIGNALS: tuple[Signal, ...] = (
    Signal("landmark_confidence", 0.05, "landmark confidence below its neighbours' (0..1)"),
    Signal("landmark_jump", 0.03, "alignment landmarks jump against their neighbours (x interocular)"),
    Signal("alignment", 0.04, "swapped face's landmarks off the plate's (x interocular)"),
    Signal("identity", 0.03, "swapped face's identity distance to the source (dlib units)"),
    Signal("mask", 0.04, "mask differs from its neighbours' (1 - IoU in face space)"),
    Signal("colour", 1.5, "colour of the swap against the plate jumps (CIE Lab units)"),
    Signal("mouth", 0.04, "mouth openness differs from the plate's (x interocular)"),
    Signal("eyes", 0.04, "eye openness differs from the plate's (eye aspect ratio)"),
    Signal("gaze", 0.06, "iris position differs from the plate's (x eye width)"),
    Signal("occlusion", 0.03, "something covers the face (merge's occlusion score)"),
    Signal("segment", 0.01, "the face segmenter is unsure inside the face (mean 4p(1-p)): an occluder it "
           "may have missed or half-found"),
    Signal("leak", 0.005, "the swap covers something the plate shows differently (colour and edge evidence "
           "inside the matte: an occluder painted over)"),
)
SIGNAL_NAMES = (*(s.name for s in SIGNALS), "dropout")


@dataclass
class Measure:
    """What was measured on one frame of a render (None where not measured or not applicable)."""

    index: int
    status: str  # swapped | passthrough | kept
    shot_cut: bool = False
    occlusion: float | None = None
    landmark_score: float | None = None
    landmark_jump: float | None = None
    alignment: float | None = None
    identity: float | None = None  # measured on a stride; interpolated in between
    mouth: float | None = None
    eyes: float | None = None
    gaze: float | None = None
    colour: list[float] | None = None  # Lab offset (3,)
    segment: float | None = None  # the segmenter's doubt inside the face (merge, occlusion=segment)
    leak: float | None = None  # share of the face painted over where the plate shows something else
    settings_hash: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Measure:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass
class Glitch:
    """One frame's score. ``reasons``: ``{"reason", "z", "value", "usual"}`` dicts, strongest first."""

    frame: int
    score: float
    flagged: bool
    status: str
    shot_cut: bool
    reasons: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def robust_z(values: np.ndarray, floor: float) -> tuple[np.ndarray, float, float]:
    """``(z, median, spread)``: ``(x - median) / max(1.4826 MAD, floor)``, NaN kept as NaN."""
    ok = np.isfinite(values)
    if not ok.any():
        return np.full_like(values, np.nan), math.nan, floor
    med = float(np.median(values[ok]))
    spread = max(1.4826 * float(np.median(np.abs(values[ok] - med))), floor)
    return (values - med) / spread, med, spread


def _segments(measures: Sequence[Measure]) -> np.ndarray:
    """Shot number of each frame (a new shot starts at every shot cut)."""
    return np.cumsum([1 if m.shot_cut else 0 for m in measures])


def _neighbours(i: int, n: int, shot: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Frames within :data:`WINDOW` of ``i`` in the same shot (and, where ``shot`` encodes it, with the same
    settings) that have a value."""
    lo, hi = max(0, i - WINDOW), min(n, i + WINDOW + 1)
    idx = np.arange(lo, hi)
    return idx[(shot[idx] == shot[i]) & usable[idx] & (idx != i)]


def _groups(measures: Sequence[Measure]) -> np.ndarray:
    """Shot and settings group of each frame: a mask or colour change where the artist changed the settings
    (an override starts or ends) is intended, so such frames are compared only with frames set alike."""
    shot = _segments(measures)
    keys: dict[tuple[int, str], int] = {}
    return np.array([keys.setdefault((int(shot[i]), m.settings_hash), len(keys)) for i, m in enumerate(measures)])


def _interpolated(values: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Fill NaNs of usable frames by linear interpolation between measured ones (identity stride)."""
    out = np.full_like(values, np.nan)
    known = np.isfinite(values) & usable
    if not known.any():
        return out
    idx = np.arange(len(values))
    out[usable] = np.interp(idx[usable], idx[known], values[known])
    return out


def raw_signals(measures: Sequence[Measure], masks: np.ndarray | None) -> dict[str, np.ndarray]:
    """One raw value per frame for each signal (NaN where it does not apply), larger = worse."""
    n = len(measures)
    swapped = np.array([m.status == "swapped" for m in measures])
    shot = _segments(measures)

    def column(name: str) -> np.ndarray:
        return np.array([np.nan if getattr(m, name) is None or not swapped[i] else float(getattr(m, name))
                         for i, m in enumerate(measures)], dtype=np.float64)

    out: dict[str, np.ndarray] = {}
    conf = column("landmark_score")
    drop = np.full(n, np.nan)
    for i in np.nonzero(swapped & np.isfinite(conf))[0].tolist():
        nb = _neighbours(i, n, shot, np.isfinite(conf))
        drop[i] = max(0.0, float(np.median(conf[nb])) - conf[i]) if nb.size else 0.0
    out["landmark_confidence"] = drop
    out["landmark_jump"] = column("landmark_jump")
    out["alignment"] = column("alignment")
    out["identity"] = _interpolated(column("identity"), swapped)
    group = _groups(measures)
    mask_dev = np.full(n, np.nan)
    if masks is not None and len(masks) == n:
        has = swapped & (masks.reshape(n, -1).sum(1) > 0)
        for i in np.nonzero(has)[0].tolist():
            nb = _neighbours(i, n, group, has)
            if nb.size:
                usual = np.median(masks[nb].astype(np.float32), axis=0) >= 0.5
                mask_dev[i] = 1.0 - mask_iou(masks[i] > 0, usual)
    out["mask"] = mask_dev
    colours = np.array([m.colour if (m.colour is not None and swapped[i]) else [np.nan] * 3
                        for i, m in enumerate(measures)], dtype=np.float64).reshape(n, 3)
    has_c = np.isfinite(colours).all(1)
    jump = np.full(n, np.nan)
    for i in np.nonzero(has_c)[0].tolist():
        nb = _neighbours(i, n, group, np.asarray(has_c))
        jump[i] = float(np.linalg.norm(colours[i] - np.median(colours[nb], axis=0))) if nb.size else 0.0
    out["colour"] = jump
    for name in ("mouth", "eyes", "gaze", "occlusion", "segment", "leak"):
        out[name] = column(name)
    return out


def _dropouts(measures: Sequence[Measure]) -> np.ndarray:
    """Frames left unswapped (no face found) with swapped frames close on both sides in the same shot:
    the original face flashes back for a moment."""
    n = len(measures)
    shot = _segments(measures)
    swapped = np.array([m.status == "swapped" for m in measures])
    out = np.zeros(n, bool)
    for i, m in enumerate(measures):
        if m.status != "passthrough":
            continue
        before = [j for j in range(max(0, i - 3), i) if swapped[j] and shot[j] == shot[i]]
        after = [j for j in range(i + 1, min(n, i + 4)) if swapped[j] and shot[j] == shot[i]]
        out[i] = bool(before and after)
    return out


def score(measures: Sequence[Measure], masks: np.ndarray | None = None, *,
          flag_score: float = FLAG_SCORE) -> list[Glitch]:
    """Score every frame (in the order given). ``masks``: uint8 ``(N, S, S)`` crop-space masks or None."""
    raw = raw_signals(measures, masks)
    zs: dict[str, tuple[np.ndarray, float]] = {}
    for sig in SIGNALS:
        z, med, _ = robust_z(raw[sig.name], sig.floor)
        zs[sig.name] = (np.clip(np.nan_to_num(z, nan=0.0), 0.0, Z_CAP), float(med))
    dropout = _dropouts(measures)
    out = []
    for i, m in enumerate(measures):
        reasons: list[dict[str, Any]] = []
        for sig in SIGNALS:
            zi = float(zs[sig.name][0][i])
            if zi >= REASON_Z:
                reasons.append({"reason": sig.name, "z": round(zi, 2), "value": round(float(raw[sig.name][i]), 4),
                                "usual": round(zs[sig.name][1], 4)})
        if dropout[i]:
            reasons.append({"reason": "dropout", "z": DROPOUT_Z, "value": 1.0, "usual": 0.0})
        reasons.sort(key=lambda r: -r["z"])
        total = math.sqrt(sum(r["z"] ** 2 for r in reasons))
        out.append(Glitch(m.index, round(total, 3), total >= flag_score, m.status, m.shot_cut, reasons))
    return out


def combine(people: Sequence[tuple[str, Sequence[Glitch]]]) -> list[Glitch]:
    """One score per frame for a render that swaps several people: each person's frames are scored on
    their own (``people``: model name and its glitches, frames in the same order), then a frame's reasons
    are all of theirs, each naming its ``person``, and its score is the root of their squared z-scores,
    as for one person. One person: returned unchanged."""
    if len(people) == 1:
        return list(people[0][1])
    out = []
    for per_frame in zip(*(g for _, g in people), strict=True):
        reasons = sorted(({**r, "person": name} for (name, _), g in zip(people, per_frame, strict=True)
                          for r in g.reasons), key=lambda r: -r["z"])
        total = math.sqrt(sum(r["z"] ** 2 for r in reasons))
        first = per_frame[0]
        status = "swapped" if any(g.status == "swapped" for g in per_frame) else first.status
        out.append(Glitch(first.frame, round(total, 3), total >= FLAG_SCORE, status, first.shot_cut, reasons))
    return out


def ranked(glitches: Sequence[Glitch], top: int | None = None) -> list[Glitch]:
    """Highest score first (ties: earlier frame first); ``top`` keeps the first ``top``."""
    order = sorted(glitches, key=lambda g: (-g.score, g.frame))
    return order if top is None else order[:top]


def precision_at_k(glitches: Sequence[Glitch], relevant: set[int], k: int | None = None) -> float:
    """Share of the ``k`` (default: ``len(relevant)``) top-ranked frames that are in ``relevant``."""
    k = len(relevant) if k is None else k
    if k <= 0:
        return 0.0
    return sum(1 for g in ranked(glitches, k) if g.frame in relevant) / k


# -- the workspace ---------------------------------------------------------------------------------
def store_scores(ws: Workspace, render_id: int, glitches: Sequence[Glitch]) -> None:
    """Store the render's glitch scores (their own table: a re-merge never erases them)."""
    ws.scores.replace(render_id, [(g.frame, g.score, g.reasons) for g in glitches])


def load_scores(ws: Workspace, render_id: int) -> list[Glitch]:
    """The stored scores of a render, in frame order (frames never scored are left out)."""
    return [Glitch(r.frame_index, r.score, r.score >= FLAG_SCORE, r.status or "passthrough", r.shot_cut, r.reasons)
            for r in ws.scores.of(render_id)]
