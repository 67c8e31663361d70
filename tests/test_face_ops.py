"""doppel.ops.face: one class per quantity, each covering shape, bad input, values on a known face
(the synthetic mean shape, whose eyes, lids and lips sit on exact circles) and batch == per face."""

from __future__ import annotations

import numpy as np
import pytest

from doppel.ops import face
from doppel.train.data import TRAIN_FOREHEAD_LIFT, eyes_mouth_mask, face_hull_mask
from test_merge_helpers import mean_shape

LM = mean_shape()  # unit square: eye centres (0.32, 0.40) and (0.68, 0.40), outer corners 0.5 apart
S = 128
CROP = LM * S * 0.8 + S * 0.1  # the same face in a 128 px crop


def _faces(n: int = 5) -> np.ndarray:
    """``(n, 68, 2)`` faces: the mean shape moved, scaled and jittered a little."""
    rng = np.random.default_rng(0)
    return np.stack([LM * rng.uniform(50, 300) + rng.uniform(0, 100, 2) + rng.normal(0, 0.5, (68, 2))
                     for _ in range(n)])


MEASURES = [face.interocular, face.mouth_openness, face.eye_openness, face.eye_centres]


class TestLandmarkShapes:
    def test_batches_and_extra_points(self) -> None:
        assert face.landmarks68(np.zeros((70, 2))).shape == (68, 2)
        assert face.landmarks68(np.zeros((2, 3, 68, 2))).shape == (2, 3, 68, 2)
        assert face.one_face(np.zeros((478, 2))).shape == (68, 2)

    @pytest.mark.parametrize("fn", [*MEASURES, face.landmarks68])
    @pytest.mark.parametrize("shape", [(67, 2), (68, 3), (68,)])
    def test_bad_shape_named(self, fn: object, shape: tuple[int, ...]) -> None:
        with pytest.raises(ValueError, match=rf"got \({shape[0]},"):
            fn(np.zeros(shape))  # type: ignore[operator]

    def test_one_face_refuses_a_batch(self) -> None:
        with pytest.raises(ValueError, match=r"one face.*\(2, 68, 2\)"):
            face.one_face(np.zeros((2, 68, 2)))


class TestMeasures:
    @pytest.mark.parametrize("fn", MEASURES)
    def test_batch_equals_per_face(self, fn: object) -> None:
        faces = _faces()
        batch = fn(faces)  # type: ignore[operator]
        one = np.stack([fn(f) for f in faces])  # type: ignore[operator]
        np.testing.assert_allclose(batch, one, rtol=0, atol=1e-12)
        nested = fn(faces[:4].reshape(2, 2, 68, 2))  # type: ignore[operator]
        assert nested.shape == (2, 2, *np.shape(one[0]))

    @pytest.mark.parametrize("fn", MEASURES)
    def test_dtype_and_shape(self, fn: object) -> None:
        out = np.asarray(fn(_faces(3)))  # type: ignore[operator]
        assert out.dtype == np.float64 and out.shape[0] == 3

    def test_values_on_the_mean_shape(self) -> None:
        np.testing.assert_allclose(face.eye_centres(LM), [[0.32, 0.40], [0.68, 0.40]], atol=1e-12)
        assert face.interocular(LM) == pytest.approx(0.36)
        assert face.interocular(LM, between="corners") == pytest.approx(0.50)
        # lids 0.03 * sin(60 deg) above and below the centre line, width 0.14: EAR = 0.06 sin 60 / 0.14
        np.testing.assert_allclose(face.eye_openness(LM), [0.06 * np.sin(np.pi / 3) / 0.14] * 2)
        # inner lips 0.03 * (sin 45, sin 90, sin 45) from the centre line, over the eye-centre distance
        gap = 0.06 * (2 * np.sin(np.pi / 4) + 1) / 3
        assert face.mouth_openness(LM) == pytest.approx(gap / 0.36)

    def test_ratios_do_not_depend_on_face_size(self) -> None:
        big = LM * 400 + 30
        assert face.mouth_openness(big) == pytest.approx(face.mouth_openness(LM))
        np.testing.assert_allclose(face.eye_openness(big), face.eye_openness(LM))
        assert face.interocular(big) == pytest.approx(400 * 0.36)

    def test_open_and_shut(self) -> None:
        wide = LM.copy()
        wide[65:68, 1] += 0.05  # lower inner lip down
        assert face.mouth_openness(wide) > face.mouth_openness(LM) + 0.1
        shut = LM.copy()
        shut[[37, 38, 43, 44], 1] = LM[[41, 40, 47, 46], 1]
        assert np.all(face.eye_openness(shut) < 1e-9)

    def test_degenerate_face_gives_finite_numbers(self) -> None:
        flat = np.zeros((68, 2))
        assert face.interocular(flat) == face.MIN_LENGTH
        assert face.mouth_openness(flat) == 0 and np.all(face.eye_openness(flat) == 0)

    def test_unknown_interocular_points(self) -> None:
        with pytest.raises(ValueError, match="'pupils'"):
            face.interocular(LM, between="pupils")  # type: ignore[arg-type]


class TestHullPoints:
    def test_shape_and_lift(self) -> None:
        assert face.hull_points(CROP, lift=0.0).shape == (78, 2)
        np.testing.assert_array_equal(face.hull_points(CROP, lift=0.0)[68:], CROP[face.BROWS])
        height = np.linalg.norm(CROP[face.CHIN] - CROP[face.BROWS].mean(0))
        raised = face.hull_points(CROP, lift=0.25)[68:]
        np.testing.assert_allclose(raised, CROP[face.BROWS] - [0, 0.25 * height])  # the mean shape is upright

    def test_lift_follows_the_head(self) -> None:
        c, ang = np.array([64.0, 64.0]), np.radians(30)
        rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
        turned = (CROP - c) @ rot.T + c
        expected = (face.hull_points(CROP, lift=0.3) - c) @ rot.T + c
        np.testing.assert_allclose(face.hull_points(turned, lift=0.3), expected, atol=1e-9)

    def test_bad_shape_named(self) -> None:
        with pytest.raises(ValueError, match=r"\(10, 2\)"):
            face.hull_points(CROP[:10], lift=0.1)


class TestHullMask:
    @pytest.mark.parametrize("region", face.REGIONS)
    def test_shape_dtype_range(self, region: face.Region) -> None:
        m = face.hull_mask(CROP, S, region)
        assert m.shape == (S, S) and m.dtype == np.float32 and m.min() == 0 and m.max() == 1

    def test_bad_input(self) -> None:
        with pytest.raises(ValueError, match="68"):
            face.hull_mask(CROP[:10], S)
        with pytest.raises(ValueError, match="'nose'"):
            face.hull_mask(CROP, S, "nose")  # type: ignore[arg-type]

    def test_values_on_the_mean_shape(self) -> None:
        m = face.hull_mask(CROP, S)
        for k in (face.NOSE_TIP, 36, 45, 62):
            x, y = np.round(CROP[k]).astype(int)
            assert m[y, x] == 1
        assert m[2, 2] == 0 and m[S - 2, 2] == 0
        eyes = face.hull_mask(CROP, S, "eyes")
        x, y = np.round(CROP[face.NOSE_TIP]).astype(int)
        assert eyes[y, x] == 0 and eyes[np.round(CROP[19, 1]).astype(int), np.round(CROP[19, 0]).astype(int)] == 1

    def test_lift_is_the_only_difference_between_training_and_merge(self) -> None:
        merge = face.hull_mask(CROP, S)
        assert np.array_equal(merge, face.hull_mask(CROP, S, lift=face.FOREHEAD_LIFT))
        train = face_hull_mask(CROP, S)
        assert np.array_equal(train, np.rint(face.hull_mask(CROP, S, lift=TRAIN_FOREHEAD_LIFT) * 255))
        # a higher forehead holds the lower one (up to anti-aliasing where the hull's corners move)
        assert (train.astype(np.float32) / 255 >= merge - 0.05).all() and train.sum() / 255 > merge.sum() * 1.05
        lower = face.hull_mask(CROP, S, lift=0.0)
        assert lower.sum() < merge.sum() and (merge >= lower - 0.05).all()


class TestFeaturesMask:
    def test_shape_dtype_and_bad_input(self) -> None:
        m = face.features_mask(CROP, S)
        assert m.shape == (S, S) and m.dtype == np.float32 and m.min() == 0 and m.max() == 1
        with pytest.raises(ValueError, match=r"\(3, 68, 2\)"):
            face.features_mask(np.stack([CROP] * 3), S)

    def test_eyes_and_mouth_only(self) -> None:
        m = face.features_mask(CROP, S)
        for c in (*face.eye_centres(CROP), CROP[face.MOUTH_INNER].mean(0)):
            assert m[round(c[1]), round(c[0])] == 1
        x, y = np.round(CROP[face.NOSE_TIP]).astype(int)
        assert m[y, x] == 0
        assert m.sum() < face.hull_mask(CROP, S, "eyes_mouth").sum()  # tighter than merge's region
        np.testing.assert_array_equal(eyes_mouth_mask(CROP, S), np.rint(m * 255))


class TestFillHulls:
    def test_hard_and_soft_edges(self) -> None:
        square = np.array([[2.3, 2.3], [9.6, 2.3], [9.6, 9.6], [2.3, 9.6]])
        hard = face.fill_hulls([square], (12, 16), antialias=False)
        soft = face.fill_hulls([square], (12, 16))
        assert hard.shape == soft.shape == (12, 16)
        assert set(np.unique(hard)) == {0.0, 1.0}
        assert ((soft > 0) & (soft < 1)).any()
        assert abs(soft.sum() - 7.3 ** 2) < abs(hard.sum() - 7.3 ** 2) + 1e-6  # sub-pixel: closer to the true area

    def test_bad_polygon_named(self) -> None:
        with pytest.raises(ValueError, match=r"\(4, 3\)"):
            face.fill_hulls([np.zeros((4, 3))], (8, 8))
