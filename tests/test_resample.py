"""ops.resample: the anti-aliased crop cut and the bicubic placement merge uses."""

from __future__ import annotations

import cv2
import numpy as np

from doppel.eval.sharpness import gradient_energy
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


def test_bicubic_placement_keeps_more_detail() -> None:
    rng = np.random.default_rng(0)
    face = cv2.GaussianBlur(rng.integers(0, 255, (128, 128, 3)).astype(np.uint8), (0, 0), 0.8)
    m = np.array([[1.0, 0, -20.37], [0, 1.0, -30.61]])  # frame -> crop, a sub-pixel offset
    mask = np.zeros((200, 200))
    mask[40:140, 30:130] = 1
    cubic = place_face(face, m, (200, 200))
    linear = cv2.warpAffine(face, m, (200, 200), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    assert cubic.shape == (200, 200, 3) and cubic[0, 0].tolist() == [0, 0, 0]  # outside the crop: 0
    assert gradient_energy(cubic, mask) > 1.1 * gradient_energy(linear, mask)


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
