"""Contract tests over every registered blend, plus the Poisson known answer."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from doppel.merge.blend import BLENDS
from doppel.merge.settings import CHOICES

ALL = BLENDS.names()
RNG = np.random.default_rng(0)
PLATE = cv2.GaussianBlur(RNG.integers(0, 255, (80, 96, 3), dtype=np.uint8), (0, 0), 2)
FACE = np.clip(PLATE.astype(np.int16)[:, ::-1] + 30, 0, 255).astype(np.uint8)


def _matte() -> np.ndarray:
    m = np.zeros(PLATE.shape[:2], np.float32)
    cv2.ellipse(m, (48, 40), (25, 30), 0, 0, 360, 1.0, -1)
    return cv2.GaussianBlur(m, (0, 0), 3)


def test_registry_matches_the_settings_choices() -> None:
    assert set(ALL) == set(CHOICES["blend"])


@pytest.mark.parametrize("name", ALL)
class TestContract:
    def test_zero_matte_returns_the_plate_exactly(self, name: str) -> None:
        out = BLENDS.create(name).blend(PLATE, FACE, np.zeros(PLATE.shape[:2], np.float32))
        np.testing.assert_array_equal(out, PLATE)

    def test_plate_untouched_outside_the_matte(self, name: str) -> None:
        m = _matte()
        out = BLENDS.create(name).blend(PLATE, FACE, m)
        assert out.shape == PLATE.shape and out.dtype == np.uint8
        np.testing.assert_array_equal(out[m == 0], PLATE[m == 0])
        assert np.abs(out[m > 0.99].astype(int) - PLATE[m > 0.99]).mean() > 5  # something was put in

    def test_bad_shapes_are_refused(self, name: str) -> None:
        with pytest.raises(ValueError, match="matte"):
            BLENDS.create(name).blend(PLATE, FACE, np.zeros((3, 3), np.float32))
        with pytest.raises(ValueError, match="same"):
            BLENDS.create(name).blend(PLATE, FACE[:10], _matte())


def test_alpha_known_values() -> None:
    plate = np.full((4, 4, 3), 100, np.uint8)
    face = np.full((4, 4, 3), 200, np.uint8)
    m = np.full((4, 4), 0.25, np.float32)
    np.testing.assert_array_equal(BLENDS.create("alpha").blend(plate, face, m), np.full((4, 4, 3), 125))


def test_poisson_removes_a_constant_offset() -> None:
    """Gradient-domain cloning keeps the face's gradients and the plate's boundary: a face equal to the
    plate plus a constant comes out as the plate (alpha blending would keep the offset)."""
    face = np.clip(PLATE.astype(np.int16) + 40, 0, 255).astype(np.uint8)
    m = _matte()
    core = m > 0.99
    poisson = BLENDS.create("poisson").blend(PLATE, face, m)
    alpha = BLENDS.create("alpha").blend(PLATE, face, m)
    assert np.abs(poisson[core].astype(int) - PLATE[core]).mean() < 6
    assert np.abs(alpha[core].astype(int) - PLATE[core]).mean() > 35
