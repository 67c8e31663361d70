"""Measurements of landmark tracks: jitter (in aligned-crop pixels) and lag between two tracks.

``points``: ``(T, N, 2)`` landmark positions over ``T`` consecutive frames.
"""

from __future__ import annotations

import itertools

import numpy as np

from doppel.ops.align import FaceType, estimate_transform, invert, transform_points, transform_scale


def jitter(points: np.ndarray) -> float:
    """RMS over frames and points of the length of the second difference ``p[t+1] - 2p[t] + p[t-1]``."""
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 3 or p.shape[2] != 2:
        raise ValueError(f"expected (T, N, 2) points, got {p.shape}")
    if len(p) < 3:
        return float("nan")
    d2 = p[2:] - 2 * p[1:-1] + p[:-2]
    return float(np.sqrt(np.mean(np.sum(d2**2, axis=-1))))


def in_crop(points: np.ndarray, transforms: np.ndarray) -> np.ndarray:
    """Map ``(T, N, 2)`` frame points through per-frame ``(T, 2, 3)`` frame->crop transforms."""
    return np.stack([transform_points(p, m) for p, m in zip(points, transforms, strict=True)])


def crop_jitter(points: np.ndarray, transforms: np.ndarray) -> float:
    """:func:`jitter` of landmarks seen in the aligned crop (each frame through its own transform)."""
    return jitter(in_crop(points, transforms))


def lag(reference: np.ndarray, signal: np.ndarray, *, max_lag: int = 5) -> float:
    """How many frames ``signal`` trails ``reference`` (negative: it leads), to a fraction of a frame.

    Both are ``(T, ...)`` trajectories of the same thing; their frame-to-frame velocities are
    cross-correlated over shifts ``-max_lag .. max_lag`` and the peak is refined by a parabola.
    """
    r = np.diff(np.asarray(reference, dtype=np.float64).reshape(len(reference), -1), axis=0)
    s = np.diff(np.asarray(signal, dtype=np.float64).reshape(len(signal), -1), axis=0)
    r -= r.mean(0)
    s -= s.mean(0)
    n = len(r)
    if n <= 2 * max_lag + 2:
        raise ValueError(f"need more than {2 * max_lag + 3} frames to measure lag, got {n + 1}")
    shifts = np.arange(-max_lag, max_lag + 1)
    corr = []
    for k in shifts.tolist():
        a = r[max(0, -k): n - max(0, k)]
        b = s[max(0, k): n - max(0, -k)]
        corr.append(float(np.sum(a * b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12)))
    c = np.asarray(corr)
    i = int(np.argmax(c))
    if 0 < i < len(c) - 1:
        denom = c[i - 1] - 2 * c[i] + c[i + 1]
        frac = 0.5 * (c[i - 1] - c[i + 1]) / denom if denom < 0 else 0.0
    else:
        frac = 0.0
    return float(shifts[i] + frac)


def segments(frame_indices: np.ndarray, step: int = 1, min_length: int = 8) -> list[slice]:
    """Runs of consecutive examined frames (``step`` apart) at least ``min_length`` long."""
    idx = np.asarray(frame_indices)
    if len(idx) == 0:
        return []
    breaks = np.flatnonzero(np.diff(idx) != step) + 1
    bounds = [0, *breaks.tolist(), len(idx)]
    return [slice(a, b) for a, b in itertools.pairwise(bounds) if b - a >= min_length]


def pooled_jitter(parts: list[np.ndarray]) -> float:
    """:func:`jitter` over several ``(T, N, 2)`` runs, pooled (each run's second differences only)."""
    d2 = [p[2:] - 2 * p[1:-1] + p[:-2] for p in parts if len(p) >= 3]
    if not d2:
        return float("nan")
    return float(np.sqrt(np.mean(np.concatenate([np.sum(d**2, axis=-1).ravel() for d in d2]))))


def smoothing_report(frame_indices: np.ndarray, raw: np.ndarray, smooth: np.ndarray, transforms: np.ndarray, *,
                     step: int = 1, max_lag: int = 5, size: int = 256, face_type: FaceType = "full"
                     ) -> dict[str, float]:
    """Jitter of raw and smoothed landmarks in the aligned crop, and the lag of smoothed behind raw.

    ``raw``, ``smooth``: ``(T, N, 2)`` frame pixels; ``transforms``: ``(T, 2, 3)`` frame -> crop,
    as stored (computed from the smoothed landmarks); one track, frames in order. Both landmark
    sets go through the same per-frame transform, so the difference is the landmarks' own motion.
    Lag (frames, > 0 when smoothed trails raw) is measured on frame-pixel trajectories, where the
    real head motion is (the landmarks' centroid).

    ``crop_jitter_raw``/``crop_jitter_smooth``: how steadily the crop itself sits on the frame
    (what a merged face inherits): the jitter of the crop's corners mapped back into the frame,
    in crop pixels, for transforms fitted to the raw landmarks vs the stored ones (``size`` and
    ``face_type``: those of the stored crops).
    """
    runs = segments(frame_indices, step, min_length=2 * max_lag + 4)
    raw_c = [in_crop(raw[s], transforms[s]) for s in runs]
    smooth_c = [in_crop(smooth[s], transforms[s]) for s in runs]
    jr, js = pooled_jitter(raw_c), pooled_jitter(smooth_c)
    lags = [lag(raw[s].mean(axis=1), smooth[s].mean(axis=1), max_lag=max_lag) for s in runs]
    weights = [s.stop - s.start for s in runs]
    raw_tr = np.stack([estimate_transform(p, size, face_type) for p in raw]) if len(raw) else transforms
    cr = pooled_jitter([_corners(raw_tr[s], size) for s in runs])
    cs = pooled_jitter([_corners(transforms[s], size) for s in runs])
    return {"frames": int(sum(weights)), "runs": len(runs), "jitter_raw": jr, "jitter_smooth": js,
            "ratio": js / jr if jr > 0 else float("nan"),
            "lag_frames": float(np.average(lags, weights=weights)) if lags else float("nan"),
            "crop_jitter_raw": cr, "crop_jitter_smooth": cs}


def _corners(transforms: np.ndarray, size: int) -> np.ndarray:
    """``(T, 4, 2)``: the crop's corners in frame pixels, times the run's median crop scale (so in
    crop pixels, without the scale's own frame-to-frame change leaking into positions)."""
    square = np.array([[0, 0], [size, 0], [size, size], [0, size]], dtype=np.float64)
    scale = float(np.median([transform_scale(m) for m in transforms])) if len(transforms) else 1.0
    return np.stack([transform_points(square, invert(m)) for m in transforms]) * scale
