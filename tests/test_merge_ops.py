"""Masks, temporal smoothing, shot cuts, the flicker metric and occlusion."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from doppel.merge import occlusion
from doppel.merge.composite import TemporalState, blend_into, crop_roi, prepare_face, scaled_transform
from doppel.merge.masks import face_matte
from doppel.merge.settings import MergeSettings
from doppel.merge.temporal import FlickerMeter, MatteSmoother, ShotCutDetector, VectorSmoother, flicker_ratio
from doppel.ops.align import estimate_transform, transform_points, warp_to_face
from doppel.ops.face import hull_mask
from doppel.ops.mask import erode_blur
from test_merge_helpers import draw_face, mean_shape

S = 96
LM = mean_shape() * S * 0.8 + S * 0.1  # landmarks in a 96 px crop


def test_hull_regions_nest() -> None:
    face, eyes, mouth = (hull_mask(LM, S, r) for r in ("face", "eyes", "mouth"))
    both = hull_mask(LM, S, "eyes_mouth")
    assert face.sum() > both.sum() > eyes.sum() > mouth.sum() > 0
    assert (both >= np.maximum(eyes, mouth) - 1e-6).all()
    assert face[int(LM[8, 1]) - 2, int(LM[8, 0])] == 1  # chin inside
    assert face[0, 0] == 0
    with pytest.raises(ValueError, match="68"):
        hull_mask(LM[:10], S)


def test_erode_shrinks_dilate_grows_blur_feathers_inside_crop() -> None:
    m = hull_mask(LM, S)
    assert erode_blur(m, 5, 0).sum() < m.sum() < erode_blur(m, -5, 0).sum()
    soft = erode_blur(m, 0, 12)
    assert ((soft > 0.02) & (soft < 0.98)).sum() > ((m > 0.02) & (m < 0.98)).sum()
    assert soft[0].max() == 0 and soft[:, -1].max() == 0


def test_matte_modes() -> None:
    learned = np.zeros((S, S), np.float32)
    learned[:, : S // 2] = 1
    hull = face_matte(LM, learned, S, MergeSettings(mask_mode="hull", mask_erode=0, mask_blur=0))
    prod = face_matte(LM, learned, S, MergeSettings(mask_mode="product", mask_erode=0, mask_blur=0))
    learned_only = face_matte(LM, learned, S, MergeSettings(mask_mode="learned", mask_erode=0, mask_blur=0))
    assert prod.sum() < hull.sum() and prod[:, S // 2 + 1:].max() == 0
    assert learned_only[:, 5].max() == 1 and hull[:, 5].max() == 0


def test_smoothers_average_and_reset() -> None:
    v = VectorSmoother()
    assert v.update(np.array([0.0]), 0.5)[0] == 0
    assert v.update(np.array([1.0]), 0.5)[0] == 0.5
    v.reset()
    assert v.update(np.array([1.0]), 0.5)[0] == 1.0
    assert v.update(np.array([1.0, 2.0]), 0.5).tolist() == [1.0, 2.0]  # new length restarts
    m = MatteSmoother()
    m.update(np.zeros((2, 2), np.float32), 0.75)
    assert m.update(np.ones((2, 2), np.float32), 0.75)[0, 0] == pytest.approx(0.25)


def test_shot_cut_detector() -> None:
    rng = np.random.default_rng(0)
    a = np.zeros((72, 128, 3), np.uint8)
    a[:] = (200, 120, 80)
    a += rng.integers(0, 10, a.shape, dtype=np.uint8)
    b = np.roll(a, 3, axis=1)
    c = np.zeros_like(a)
    c[:] = (30, 60, 200)
    det = ShotCutDetector()
    assert [det.update(x, 0.45) for x in (a, b, c, c)] == [False, False, True, False]


def test_flicker_ratio_known_answers() -> None:
    rng = np.random.default_rng(0)
    frames = [np.clip(100 + 5 * i + rng.integers(0, 3, (20, 20, 3)), 0, 255).astype(np.uint8) for i in range(6)]
    region = np.zeros((20, 20), bool)
    region[5:15, 5:15] = True
    regions = [region] * 6
    assert flicker_ratio(frames, frames, regions) == pytest.approx(1.0)
    noisy = [np.clip(f.astype(int) + (i % 2) * 20, 0, 255).astype(np.uint8) for i, f in enumerate(frames)]
    assert flicker_ratio(frames, noisy, regions) > 2.0
    meter = FlickerMeter()
    for f, r in zip(frames, [region, None, region, region, None, region], strict=True):
        meter.update(f, f, r)
    assert meter.pairs == 1  # only (2, 3) has a face in both frames
    assert flicker_ratio(frames[:1], frames[:1], regions[:1]) is None


def _scene(occluder: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    frame = np.full((160, 160, 3), 90, np.uint8)
    lm = mean_shape() * 100 + 30
    draw_face(frame, lm)
    if occluder:
        frame[60:150, 85:105] = (20, 120, 30)  # a green pole in front of the face
    t = estimate_transform(lm, S, "full")
    return frame, t, transform_points(lm, t)


def test_occlusion_flags_an_occluder_and_not_a_clean_face() -> None:
    clean, t, lm = _scene(False)
    swapped = warp_to_face(clean, t, S).astype(np.float32) / 255  # a perfect swap: the clean face
    hull = hull_mask(lm, S)
    scores = {}
    for name, (frame, _, _) in {"clean": _scene(False), "occluded": _scene(True)}.items():
        plate = warp_to_face(frame, t, S).astype(np.float32) / 255
        scores[name] = occlusion.estimate(swapped, plate, hull, None, lm, 0.9)
    assert scores["clean"].score < 0.02
    assert scores["occluded"].score > 0.08
    occ_map = scores["occluded"].map
    assert occ_map.shape == (S, S) and occ_map.max() > 0.9
    assert occlusion.estimate(swapped, swapped, hull, None, lm, 0.1).score > 0.7  # unsure landmarks


def test_exclude_keeps_the_occluder_in_the_output() -> None:
    frame, t, lm = _scene(True)
    clean, _, _ = _scene(False)
    swapped = np.clip(warp_to_face(clean, t, S).astype(np.float32) / 255 * [1.1, 0.95, 0.9], 0, 1)  # another face
    learned = np.ones((S, S), np.float32)
    outs = {}
    for mode in ("off", "exclude"):
        s = MergeSettings(occlusion=mode, colour="none")
        res = prepare_face(frame, t, swapped, learned, lm, 0.9, s, TemporalState())
        outs[mode] = blend_into(frame, res, s)
    pole = (slice(80, 140), slice(89, 101))
    err = {m: np.abs(o[pole].astype(int) - frame[pole]).mean() for m, o in outs.items()}
    assert err["exclude"] < err["off"] / 3


def test_prepare_and_blend_leave_the_rest_of_the_frame_identical() -> None:
    frame, t, lm = _scene(False)
    swapped = np.full((S, S, 3), 0.3, np.float32)
    res = prepare_face(frame, t, swapped, None, lm, None, MergeSettings(), TemporalState())
    out = blend_into(frame, res, MergeSettings())
    x0, y0, x1, y1 = res.roi
    outside = np.ones(frame.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    np.testing.assert_array_equal(out[outside], frame[outside])
    assert not np.array_equal(out, frame)


def test_face_scale_grows_the_roi() -> None:
    _, t, _ = _scene(False)
    small = crop_roi(t, S, (160, 160))
    big = crop_roi(scaled_transform(t, S, 1.2), S, (160, 160))
    assert (big[2] - big[0]) > (small[2] - small[0])


def test_face_smoother_damps_noise_where_still_and_follows_motion() -> None:
    from doppel.merge.temporal import FaceSmoother

    rng = np.random.default_rng(0)
    plate = np.full((32, 32, 3), 0.5, np.float32)
    sm = FaceSmoother()
    outs = [sm.update(np.clip(0.5 + rng.normal(0, 0.05, plate.shape), 0, 1).astype(np.float32), plate, 0.6)
            for _ in range(30)]
    raw_change = 0.05 * np.sqrt(2) * np.sqrt(2 / np.pi)  # mean |a - b| of two N(0, 0.05) samples
    smooth_change = np.mean([np.abs(a - b).mean() for a, b in itertools.pairwise(outs[10:])])
    assert smooth_change < 0.6 * raw_change
    moved = plate + 0.3  # the destination changed everywhere: the new face is taken as it is
    new_face = np.full_like(plate, 0.9)
    np.testing.assert_allclose(sm.update(new_face, moved, 0.6), new_face, atol=1e-4)
