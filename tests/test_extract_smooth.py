"""Landmark smoothing, jitter/lag metrics and head pose: pure maths on known signals."""

from __future__ import annotations

import numpy as np
import pytest

from doppel.extract.metrics import crop_jitter, jitter, lag, segments, smoothing_report
from doppel.extract.pose import MODEL_LANDMARKS, head_pose, project_model
from doppel.extract.smooth import FixedLagSmoother, OneEuroFilter, default_lag, one_euro_sequence, smooth_sequence


def _motion(t: np.ndarray) -> np.ndarray:
    """(T, 3, 2) points moving smoothly (a head turning back and forth)."""
    base = np.array([[0.0, 0.0], [30.0, 5.0], [15.0, 40.0]])
    offset = np.stack([40 * np.sin(2 * np.pi * t / 45), 15 * np.sin(2 * np.pi * t / 70)], axis=1)
    return base[None] + offset[:, None]


def test_quadratic_motion_passes_exactly() -> None:
    t = np.arange(30, dtype=np.float64)
    track = np.stack([np.stack([0.5 * t**2 - 3 * t, 2 * t + 1], axis=1)] * 4, axis=1)  # (T, 4, 2)
    out = smooth_sequence(track, lag=3)
    assert out.shape == track.shape
    assert np.allclose(out[3:-3], track[3:-3], atol=1e-9)  # zero lag and no shrinkage inside the track


def test_streaming_equals_batch_and_delay_is_lag() -> None:
    rng = np.random.default_rng(1)
    samples = rng.normal(size=(20, 5, 2))
    sm = FixedLagSmoother(3)
    got: list[tuple[int, np.ndarray]] = []
    for i, s in enumerate(samples):
        ready = sm.push(s)
        assert [p for p, _ in ready] == ([i - 3] if i >= 3 else [])
        got += ready
    got += sm.flush()
    assert [p for p, _ in got] == list(range(20))
    assert np.allclose(np.stack([v for _, v in got]), smooth_sequence(samples, 3))


def test_noise_jitter_drops_and_motion_does_not_lag() -> None:
    rng = np.random.default_rng(2)
    t = np.arange(150, dtype=np.float64)
    truth = _motion(t)
    raw = truth + rng.normal(scale=0.8, size=truth.shape)
    smooth = smooth_sequence(raw, lag=default_lag(30))
    assert jitter(smooth) <= 0.5 * jitter(raw)
    assert abs(lag(truth, smooth)) <= 0.25
    assert np.sqrt(np.mean((smooth - truth) ** 2)) < np.sqrt(np.mean((raw - truth) ** 2))
    euro = one_euro_sequence(raw, 30.0)
    assert lag(truth, euro) > lag(truth, smooth)  # the causal filter trails the motion


def test_lag_measures_a_known_delay() -> None:
    t = np.arange(120, dtype=np.float64)
    truth = _motion(t)
    delayed = _motion(t - 2.0)
    assert lag(truth, delayed) == pytest.approx(2.0, abs=0.2)
    assert lag(delayed, truth) == pytest.approx(-2.0, abs=0.2)
    with pytest.raises(ValueError):
        lag(truth[:8], truth[:8])


def test_one_euro_follows_and_smooths() -> None:
    f = OneEuroFilter(30.0)
    assert np.allclose(f(np.array([1.0, 2.0])), [1.0, 2.0])
    for _ in range(200):
        out = f(np.array([5.0, -1.0]))
    assert np.allclose(out, [5.0, -1.0], atol=1e-3)
    with pytest.raises(ValueError):
        OneEuroFilter(0)


def test_jitter_in_crop_and_report() -> None:
    t = np.arange(60, dtype=np.float64)
    pts = np.repeat(_motion(t), 23, axis=1)[:, :68]
    tr = np.tile(np.array([[2.0, 0, 0], [0, 2.0, 0]]), (60, 1, 1))
    assert crop_jitter(pts, tr) == pytest.approx(2 * jitter(pts))
    assert jitter(np.zeros((2, 3, 2))) != jitter(np.zeros((2, 3, 2)))  # nan below 3 frames
    assert [(s.start, s.stop) for s in segments(np.array([0, 1, 2, 5, 6, 7, 8]), 1, 3)] == [(0, 3), (3, 7)]
    rng = np.random.default_rng(3)
    raw = pts + rng.normal(scale=0.7, size=pts.shape)
    rep = smoothing_report(np.arange(60), raw, smooth_sequence(raw, 4), tr)
    assert rep["frames"] == 60 and rep["ratio"] < 0.5 and abs(rep["lag_frames"]) < 0.5
    assert rep["crop_jitter_smooth"] < rep["crop_jitter_raw"]


@pytest.mark.parametrize("angles", [(0, 0, 0), (25, 0, 0), (-20, 10, 0), (10, -12, 15), (0, 0, -20)])
def test_head_pose_recovers_known_angles(angles: tuple[float, float, float]) -> None:
    size = (640, 480)
    lm = np.zeros((68, 2))
    lm[list(MODEL_LANDMARKS)] = project_model(*angles, size)
    assert np.allclose(head_pose(lm, size), angles, atol=0.5)
    with pytest.raises(ValueError):
        head_pose(lm[:10], size)
