"""ops.resample: the anti-aliased crop cut and the placement merge uses."""

from __future__ import annotations

import cv2
import numpy as np

from doppel.ops.resample import cut_face, place_face


def stripes(size: int = 400, period: float = 3.1) -> np.ndarray:
    x = np.arange(size)
    row = (127.5 + 120 * np.sin(2 * np.pi * x / period)).astype(np.uint8)
    return np.repeat(np.repeat(row[None, :, None], size, 0), 3, 2)


def test_small_crop_of_fine_detail_does_not_alias() -> None:
    img = stripes()
    m = np.array([[96 / 380, 0, 0], [0, 96 / 380, 0]])  # a 380 px face into a 96 px crop
    aliased = cv2.warpAffine(img, m, (96, 96), flags=cv2.INTER_LINEAR)
    clean = cut_face(img, m, 96)
    assert clean.shape == (96, 96, 3) and clean.dtype == np.uint8
    # stripes finer than the crop's pixels: averaged away (mostly), not folded into false coarse stripes
    assert clean.astype(float).std() < 0.4 * aliased.astype(float).std()


def test_small_crop_keeps_what_the_crop_can_hold() -> None:
    img = stripes(period=24.0)  # coarse: 6 crop pixels a period after a 4x reduction
    m = np.array([[0.25, 0, 0], [0, 0.25, 0]])
    clean, plain = cut_face(img, m, 96).astype(float), cv2.warpAffine(img, m, (96, 96)).astype(float)
    assert np.abs(clean - plain)[8:-8, 8:-8].mean() < 6 and clean.std() > 0.8 * plain.std()


def test_near_native_crop_is_a_plain_warp() -> None:
    img = stripes(period=12)
    m = np.array([[0.9, 0, 3.3], [0, 0.9, 1.7]])
    want = cv2.warpAffine(img, m, (128, 128), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    assert np.array_equal(cut_face(img, m, 128), want)


def test_a_face_placed_back_lands_where_it_was_cut() -> None:
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(0, 255, (200, 200, 3)).astype(np.uint8), (0, 0), 2.0)
    m = np.array([[1.0, 0, -20.37], [0, 1.0, -30.61]])  # frame -> crop, a sub-pixel offset
    placed = place_face(cut_face(img, m, 128), m, (200, 200))
    assert placed.shape == (200, 200, 3) and placed[0, 0].tolist() == [0, 0, 0]  # outside the crop: 0
    inside = (slice(40, 140), slice(30, 130))
    error = np.abs(placed[inside].astype(float) - img[inside]).mean()
    shifted = place_face(cut_face(img, m, 128), m + np.array([[0, 0, 1.0], [0, 0, 0]]), (200, 200))
    off = np.abs(shifted[inside].astype(float) - img[inside]).mean()
    assert error < 1.5 and off > 2 * error, (error, off)  # a pixel off would be seen


def test_the_cut_keeps_the_crop_where_warp_to_face_puts_it() -> None:
    """Area averaging centres crop pixel i on a block of frame pixels; the cut is shifted so that it stays
    where a plain warp by the same matrix puts it (merge places the face back with that matrix)."""
    import math

    from doppel.ops.align import warp_to_face

    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(0, 255, (800, 800)).astype(np.float32), (0, 0), 3)
    img = np.clip((img - img.mean()) / img.std() * 40 + 128, 0, 255).astype(np.uint8)
    for s in (0.25, 0.3, 0.5):
        m = np.array([[s * math.cos(0.2), -s * math.sin(0.2), 37.3], [s * math.sin(0.2), s * math.cos(0.2), -60.1]])
        ref = warp_to_face(cv2.GaussianBlur(img, (0, 0), 0.5 / s), m, 96)  # pre-filtered: no aliasing either
        (dx, dy), _ = cv2.phaseCorrelate(ref.astype(np.float64), cut_face(img, m, 96).astype(np.float64))
        assert math.hypot(dx, dy) < 0.06, (s, dx, dy)
