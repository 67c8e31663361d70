"""Pure metric functions of doppel.eval.metrics, on cases with a known answer."""

from __future__ import annotations

import numpy as np
import pytest

from doppel.eval import metrics
from doppel.extract.pose import project_model, rotation_from_angles
from doppel.ops import face


def _face(iod: float = 60.0) -> np.ndarray:
    """68 plausible landmarks: a grid scaled so that points 36 and 45 are ``iod`` apart."""
    rng = np.random.default_rng(0)
    lm = rng.uniform(0, 100, (68, 2))
    lm[36], lm[45] = (20.0, 40.0), (20.0 + iod, 40.0)
    return lm


def test_nme_of_a_shift_is_shift_over_interocular() -> None:
    lm = _face(iod=50.0)
    track = np.stack([lm, lm + 1.0])
    shifted = track + np.array([3.0, 4.0])  # 5 px
    np.testing.assert_allclose(metrics.nme(track, track), 0.0)
    np.testing.assert_allclose(metrics.nme(shifted, track), 5.0 / 50.0)


def test_nme_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="shape"):
        metrics.nme(np.zeros((2, 68, 2)), np.zeros((3, 68, 2)))
    with pytest.raises(ValueError, match="68"):
        face.interocular(np.zeros((5, 2)))


def test_rotation_angle_between_known_rotations() -> None:
    a = rotation_from_angles(10.0, 0.0, 0.0)
    b = rotation_from_angles(-5.0, 0.0, 0.0)
    assert metrics.rotation_angle(a, a) == pytest.approx(0.0, abs=1e-6)
    assert metrics.rotation_angle(a, b) == pytest.approx(15.0, abs=1e-6)


def test_pose_error_zero_for_same_landmarks_and_grows_with_turn() -> None:
    base = _face()
    # put the six model points at a frontal and at a 20-degree yawed pose
    lm0, lm1 = base.copy(), base.copy()
    from doppel.extract.pose import MODEL_LANDMARKS

    lm0[list(MODEL_LANDMARKS)] = project_model(0, 0, 0, (640, 480))
    lm1[list(MODEL_LANDMARKS)] = project_model(20, 0, 0, (640, 480))
    assert metrics.pose_errors(lm0[None], lm0[None], (640, 480))[0] == pytest.approx(0.0, abs=1e-3)
    assert metrics.pose_errors(lm1[None], lm0[None], (640, 480))[0] == pytest.approx(20.0, abs=2.0)


def test_openness_and_correlation() -> None:
    lm = _face()
    opened = lm.copy()
    opened[[66, 67, 65], 1] += 6.0  # lower inner lip down by 6 px
    assert face.mouth_openness(opened) > face.mouth_openness(lm)
    a = np.array([0.1, 0.2, 0.3, 0.2, 0.1])
    assert metrics.correlation(a, a) == pytest.approx(1.0)
    assert metrics.correlation(a, -a) == pytest.approx(-1.0)
    assert metrics.correlation(a, np.full(5, 0.2)) is None  # a constant signal has no correlation
    assert metrics.correlation(a[:2], a[:2]) is None


def test_identity_scores_and_retrieval() -> None:
    c = {"ann": np.array([1.0, 0.0, 0.0]), "bob": np.array([0.0, 1.0, 0.0]), "cy": np.array([0.0, 0.0, 1.0])}
    emb = np.array([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [1.0, 0.0, 0.1], [0.0, 0.2, 0.9]])
    s = metrics.identity_scores(emb, c, "ann", "bob")
    assert s.nearest == ["ann", "bob", "ann", "cy"]
    assert s.retrieval == pytest.approx(0.5)
    assert s.src_wins == pytest.approx(0.5)
    np.testing.assert_allclose(s.sim_src[0], 0.9 / np.hypot(0.9, 0.1))
    missed = metrics.identity_scores(emb, c, "ann", "bob", missing=4)  # 4 frames with no face: failures
    assert missed.retrieval == pytest.approx(2 / 8) and missed.src_wins == pytest.approx(2 / 8)
    assert metrics.identity_scores(np.zeros((0, 3)), c, "ann", "bob", missing=2).src_wins == 0.0
    with pytest.raises(ValueError, match="dan"):
        metrics.identity_scores(emb, c, "dan")


def test_centroid_is_unit_mean_direction() -> None:
    cen = metrics.centroid(np.array([[2.0, 0.0], [0.0, 5.0]]))
    np.testing.assert_allclose(cen, [np.sqrt(0.5), np.sqrt(0.5)])


def test_jitter_of_smooth_motion_is_zero_and_gaps_break_runs() -> None:
    t = np.arange(10, dtype=float)
    lm = np.zeros((10, 68, 2)) + t[:, None, None] * 2.0  # constant velocity
    assert metrics.track_jitter(np.arange(10), lm) == pytest.approx(0.0)
    noisy = lm.copy()
    noisy[5] += 1.0
    assert metrics.track_jitter(np.arange(10), noisy) > 0.5
    # a gap between 4 and 10 means the jump across it is not jitter
    idx = np.array([0, 1, 2, 3, 4, 10, 11, 12, 13, 14])
    jump = lm.copy()
    jump[5:] += 50.0
    assert metrics.track_jitter(idx, jump) == pytest.approx(0.0)


def _disc_scene(offset: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    base = (rng.integers(60, 190, (8, 8, 3)).repeat(16, 0).repeat(16, 1)).astype(np.float32)
    yy, xx = np.mgrid[:128, :128]
    inside = ((yy - 64) ** 2 + (xx - 64) ** 2) < 40**2
    out = base.copy()
    out[inside] += offset
    matte = inside.astype(np.float32)
    return base.clip(0, 255).astype(np.uint8), out.clip(0, 255).astype(np.uint8), matte


def test_seam_meter_one_for_identical_and_higher_for_a_pasted_edge() -> None:
    inp, _, matte = _disc_scene(0)
    meter = metrics.SeamMeter()
    meter.update(inp, inp, matte)
    assert meter.score == pytest.approx(1.0)
    _, pasted, _ = _disc_scene(40)
    hard = metrics.SeamMeter()
    hard.update(inp, pasted, matte)
    assert hard.score is not None and hard.score > 1.5
    assert metrics.SeamMeter().score is None


def test_frame_matte_is_frame_shaped_and_feathered() -> None:
    lm = _face(iod=40.0) * 0.5 + np.array([60.0, 30.0])
    matte = metrics.frame_matte(lm, (120, 200, 3), erode=8, blur=16)
    assert matte.shape == (120, 200) and matte.dtype == np.float32
    assert matte.min() >= 0.0 and matte.max() <= 1.0
    assert ((matte > 0.05) & (matte < 0.95)).any()


def test_match_share_uses_raw_distance_and_counts_missing() -> None:
    ref = np.array([1.0, 0.0])
    emb = np.array([[1.1, 0.0], [1.0, 0.5], [0.0, 1.0]])  # distances 0.1, 0.5, 1.41
    assert metrics.match_share(emb, ref, 0.6) == pytest.approx(2 / 3)
    assert metrics.match_share(emb, ref, 0.6, missing=1) == pytest.approx(2 / 4)
    assert metrics.match_share(np.zeros((0, 2)), ref, 0.6) is None
