"""Contract tests over every registered colour transfer, plus known answers per transfer."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from doppel.core.errors import ConfigError
from doppel.merge.colour import COLOUR_TRANSFERS, transfer
from doppel.merge.settings import CHOICES

ALL = COLOUR_TRANSFERS.names()


def _image(seed: int, shift: tuple[float, float, float], scale: float, n: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.random((n, n, 3)).astype(np.float32), (0, 0), 1.0)
    base = (base - base.mean()) / base.std()
    return np.clip(0.5 + 0.12 * scale * base + np.array(shift, np.float32), 0, 1).astype(np.float32)


SOURCE = _image(0, (0.10, -0.05, 0.0), 0.7)
TARGET = _image(1, (-0.08, 0.05, 0.08), 1.2)


def test_registry_matches_the_settings_choices() -> None:
    assert set(ALL) == set(CHOICES["colour"])
    with pytest.raises(ConfigError, match="unknown colour transfer 'nope'"):
        COLOUR_TRANSFERS.create("nope")


@pytest.mark.parametrize("name", ALL)
class TestContract:
    def test_shape_dtype_range(self, name: str) -> None:
        out = transfer(name, SOURCE, TARGET)
        assert out.shape == SOURCE.shape and out.dtype == np.float32
        assert out.min() >= 0.0 and out.max() <= 1.0

    def test_onto_itself_is_identity(self, name: str) -> None:
        np.testing.assert_allclose(transfer(name, SOURCE, SOURCE), SOURCE, atol=3e-3)

    def test_params_have_fixed_length_and_average(self, name: str) -> None:
        plugin = COLOUR_TRANSFERS.create(name)
        a = plugin.fit(SOURCE, TARGET)
        b = plugin.fit(_image(2, (0, 0, 0), 1.0), _image(3, (0.1, 0.1, 0.1), 0.5))
        assert a.ndim == 1 and a.shape == b.shape and a.dtype == np.float64
        mid = plugin.apply(SOURCE, (a + b) / 2)  # what temporal smoothing does
        assert np.isfinite(mid).all() and mid.min() >= 0 and mid.max() <= 1

    def test_mask_selects_the_statistics(self, name: str) -> None:
        plugin = COLOUR_TRANSFERS.create(name)
        mask = np.zeros(SOURCE.shape[:2], np.float32)
        mask[16:48, 16:48] = 1
        polluted = TARGET.copy()
        polluted[mask == 0] = (0.0, 1.0, 0.0)  # outside the mask: must not count
        np.testing.assert_allclose(plugin.fit(SOURCE, polluted, mask, mask), plugin.fit(SOURCE, TARGET, mask, mask))

    def test_bad_shape_is_refused(self, name: str) -> None:
        if name == "none":
            pytest.skip("none ignores its inputs")
        with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
            COLOUR_TRANSFERS.create(name).fit(SOURCE[..., :2], TARGET)


def _stats(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    flat = img.reshape(-1, 3).astype(np.float64)
    return flat.mean(0), np.cov(flat, rowvar=False)


def test_rct_matches_lab_mean_and_std() -> None:
    source, target = _image(0, (0.05, 0.0, 0.0), 0.5), _image(1, (-0.05, 0.02, 0.05), 0.8)  # in gamut
    out = transfer("rct", source, target)
    lab_o = cv2.cvtColor(out, cv2.COLOR_RGB2Lab).reshape(-1, 3)
    lab_t = cv2.cvtColor(target, cv2.COLOR_RGB2Lab).reshape(-1, 3)
    np.testing.assert_allclose(lab_o.mean(0), lab_t.mean(0), atol=0.5)
    np.testing.assert_allclose(lab_o.std(0), lab_t.std(0), rtol=0.05)


@pytest.mark.parametrize("name", ["lct", "mkl"])
def test_linear_transfers_match_mean_and_covariance(name: str) -> None:
    out = transfer(name, SOURCE, TARGET)
    (mo, co), (mt, ct) = _stats(out), _stats(TARGET)
    np.testing.assert_allclose(mo, mt, atol=2e-3)
    np.testing.assert_allclose(co, ct, atol=2e-4)


def test_mkl_is_the_least_displacement_map() -> None:
    """MKL and LCT reach the same covariance; MKL moves colours less (its defining property)."""
    moved = {n: float(np.mean((transfer(n, SOURCE, TARGET) - SOURCE) ** 2)) for n in ("lct", "mkl")}
    assert moved["mkl"] <= moved["lct"] + 1e-9


@pytest.mark.parametrize("name", ["hist", "idt"])
def test_distribution_transfers_match_marginals(name: str) -> None:
    out = transfer(name, SOURCE, TARGET)
    for c in range(3):
        q_o = np.quantile(out[..., c], [0.1, 0.25, 0.5, 0.75, 0.9])
        q_t = np.quantile(TARGET[..., c], [0.1, 0.25, 0.5, 0.75, 0.9])
        np.testing.assert_allclose(q_o, q_t, atol=0.01)


def test_none_keeps_the_source() -> None:
    np.testing.assert_array_equal(transfer("none", SOURCE, TARGET), SOURCE)
