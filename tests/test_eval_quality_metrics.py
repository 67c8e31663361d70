"""The quality metrics of doppel.eval.sharpness / temporal / gaze on synthetic images with known answers.

What they must not be fooled by: a blur lowers the sharpness ratio; a sharpen filter and noise raise
it, but neither brings a degraded estimate closer to the truth by SSIM or GMSD; a frozen face is not
rewarded by the detail-normalised warp error, while temporal noise raises the plain one.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from doppel.eval import gaze, sharpness, temporal


def texture(size: int = 160, seed: int = 0) -> np.ndarray:
    """A natural-looking RGB texture: 1/f noise (power falling as 1/f^2) with a few strong edges."""
    rng = np.random.default_rng(seed)
    f = np.fft.fftfreq(size)
    radius = np.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    radius[0, 0] = 1.0
    out = []
    for _ in range(3):
        spec = (rng.normal(size=(size, size)) + 1j * rng.normal(size=(size, size))) / radius
        spec[0, 0] = 0
        out.append(np.real(np.fft.ifft2(spec)))
    img = np.stack(out, -1)
    img = (img - img.mean()) / img.std() * 30 + 128
    cv2.circle(img, (size // 3, size // 3), size // 8, (40, 30, 30), -1, cv2.LINE_AA)
    cv2.line(img, (10, size - 30), (size - 10, size - 50), (230, 220, 210), 3, cv2.LINE_AA)
    return np.clip(img, 0, 255).astype(np.uint8)


def disk(size: int = 160, margin: int = 20) -> np.ndarray:
    m = np.zeros((size, size), np.float32)
    cv2.circle(m, (size // 2, size // 2), size // 2 - margin, 1.0, -1)
    return m


def unsharp(img: np.ndarray, amount: float, sigma: float = 1.5) -> np.ndarray:
    f = img.astype(np.float32)
    return np.clip(f + amount * (f - cv2.GaussianBlur(f, (0, 0), sigma)), 0, 255).astype(np.uint8)


def degrade(img: np.ndarray, factor: int = 3) -> np.ndarray:
    """What a low-resolution model gives at best: area-averaged down, bilinear back up."""
    h, w = img.shape[:2]
    small = cv2.resize(img, (w // factor, h // factor), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


class TestSharpness:
    def test_identical_is_one(self) -> None:
        t = texture()
        assert sharpness.sharpness_ratio(t, t, disk()) == pytest.approx(1.0)

    def test_blur_lowers_monotonically(self) -> None:
        t, m = texture(), disk()
        ratios = [sharpness.sharpness_ratio(cv2.GaussianBlur(t, (0, 0), s), t, m) for s in (0.7, 1.5, 3.0)]
        assert 1.0 > ratios[0] > ratios[1] > ratios[2] > 0

    def test_only_the_mask_counts(self) -> None:
        t, m = texture(), disk()
        outside_blurred = np.where(m[..., None] > 0, t, cv2.GaussianBlur(t, (0, 0), 4)).astype(np.uint8)
        assert sharpness.sharpness_ratio(outside_blurred, t, m) == pytest.approx(1.0, abs=0.02)

    def test_sharpen_and_noise_raise_the_no_reference_ratio(self) -> None:
        """Why the ratio is never read alone: both make a degraded face look 'sharper'."""
        t, m = texture(), disk()
        d = degrade(t)
        base = sharpness.sharpness_ratio(d, t, m)
        noisy = np.clip(d + np.random.default_rng(1).normal(0, 12, d.shape), 0, 255).astype(np.uint8)
        assert sharpness.sharpness_ratio(unsharp(d, 2.0), t, m) > base
        assert sharpness.sharpness_ratio(noisy, t, m) > base

    def test_empty_mask_and_bad_shapes(self) -> None:
        t = texture()
        assert math.isnan(sharpness.gradient_energy(t, np.zeros(t.shape[:2])))
        with pytest.raises(ValueError, match="mask is"):
            sharpness.gradient_energy(t, np.ones((3, 3)))
        with pytest.raises(ValueError, match="expected an RGB"):
            sharpness.luma(np.zeros((4, 4, 2)))


class TestFullReference:
    def test_identical(self) -> None:
        t, m = texture(), disk()
        f = sharpness.fidelity(t, t, m)
        assert f.ssim == pytest.approx(1.0) and f.gmsd == pytest.approx(0.0, abs=1e-6)
        assert math.isinf(f.psnr) and f.sharpness == pytest.approx(1.0)

    def test_ssim_matches_a_reference_implementation(self) -> None:
        from skimage.metrics import structural_similarity

        t = texture()
        d = cv2.GaussianBlur(t, (0, 0), 1.2)
        grey = [sharpness.luma(x) for x in (d, t)]
        ref = structural_similarity(grey[0], grey[1], data_range=255, gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False)
        ours = sharpness.masked_ssim(d, t, np.ones(t.shape[:2]))
        assert ours == pytest.approx(ref, abs=0.01)

    def test_psnr_of_a_known_error(self) -> None:
        t = texture()
        off = np.clip(t.astype(np.int16) + 5, 0, 255).astype(np.uint8)
        m = disk()
        inside = (m > 0)
        mse = ((off.astype(float) - t) ** 2).mean(-1)[inside].mean()
        assert sharpness.masked_psnr(off, t, m) == pytest.approx(10 * math.log10(255**2 / mse))

    @pytest.mark.parametrize("amount", [0.5, 1.0, 2.0])
    def test_sharpen_buys_far_more_apparent_detail_than_fidelity(self, amount: float) -> None:
        """Unsharp masking a resampling-blurred face partly undoes the blur (PSNR rises a little, and
        SSIM's contrast term likes the added variance), but what it adds to the no-reference ratio is
        many times what it adds to any full-reference figure; over-sharpening makes GMSD and PSNR worse."""
        t, m = texture(), disk()
        for factor in (2, 3):
            d = degrade(t, factor)
            plain, sharp = sharpness.fidelity(d, t, m), sharpness.fidelity(unsharp(d, amount), t, m)
            assert sharp.sharpness > 1.25 * plain.sharpness
            assert sharp.ssim < plain.ssim + 0.08
            assert sharp.gmsd > plain.gmsd - 0.01
            assert sharp.psnr < plain.psnr + 1.0
        over = sharpness.fidelity(unsharp(degrade(t, 2), 2.0), t, m)
        best = sharpness.fidelity(unsharp(degrade(t, 2), 1.0), t, m)
        assert over.gmsd > best.gmsd and over.psnr < best.psnr

    def test_no_sharpen_amount_carries_a_degraded_face_over_the_self_swap_bar(self) -> None:
        t, m = texture(), disk()
        d = degrade(t, 2)
        for amount in np.arange(0.0, 2.01, 0.25):
            f = sharpness.fidelity(unsharp(d, float(amount)) if amount else d, t, m)
            assert not (f.ssim >= 0.85 and 0.8 <= f.sharpness <= 1.25), amount

    def test_noise_as_detail_is_caught(self) -> None:
        t, m = texture(), disk()
        d = degrade(t)
        noisy = np.clip(d + np.random.default_rng(2).normal(0, 12, d.shape), 0, 255).astype(np.uint8)
        plain, bad = sharpness.fidelity(d, t, m), sharpness.fidelity(noisy, t, m)
        assert bad.sharpness > plain.sharpness
        assert bad.ssim < plain.ssim and bad.gmsd > plain.gmsd and bad.psnr < plain.psnr

    def test_the_right_detail_scores_best(self) -> None:
        t, m = texture(), disk()
        near = np.clip(t.astype(np.int16) + np.random.default_rng(3).normal(0, 2, t.shape), 0, 255).astype(np.uint8)
        assert sharpness.masked_ssim(near, t, m) > sharpness.masked_ssim(degrade(t), t, m)
        assert sharpness.gmsd(near, t, m) < sharpness.gmsd(degrade(t), t, m)

    def test_shape_mismatch(self) -> None:
        with pytest.raises(ValueError, match="differ"):
            sharpness.masked_ssim(texture(160), texture(128), disk())


def moving_clip(frames: int = 8, size: int = 200) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A textured 'face' sliding right 2 px a frame over a textured background, with a dark 'mouth'
    opening and closing inside it; the face mask follows it."""
    bg = texture(size + 40, seed=5)
    face = texture(120, seed=6)
    clip, masks = [], []
    for t in range(frames):
        img = bg[20:20 + size, 20:20 + size].copy()
        x = 30 + 2 * t
        f = face.copy()
        gap = int(6 + 10 * abs(math.sin(t * 0.8)))
        cv2.ellipse(f, (60, 85), (25, gap), 0, 0, 360, (20, 10, 10), -1, cv2.LINE_AA)
        img[40:160, x:x + 120] = f
        m = np.zeros((size, size), np.float32)
        cv2.ellipse(m, (x + 60, 100), (50, 55), 0, 0, 360, 1.0, -1)
        clip.append(img)
        masks.append(m)
    return clip, masks


class TestWarpError:
    def test_flow_recovers_a_shift(self) -> None:
        t = cv2.cvtColor(texture(128), cv2.COLOR_RGB2GRAY)
        moved = np.roll(t, 3, axis=1)
        flow = temporal.dis_flow(moved, t)  # moved(p) ~ t(p + flow): flow x ~ -3
        assert np.median(flow[20:-20, 20:-20, 0]) == pytest.approx(-3, abs=0.3)

    def test_identical_clip_is_one(self) -> None:
        clip, masks = moving_clip()
        r = temporal.warp_error(clip, clip, masks)
        assert r.ratio == pytest.approx(1.0) and r.normalised_ratio == pytest.approx(1.0)
        assert r.pairs == len(clip) - 1

    def test_temporal_noise_raises_it(self) -> None:
        clip, masks = moving_clip()
        rng = np.random.default_rng(0)
        noisy = [np.clip(c + rng.normal(0, 6, c.shape), 0, 255).astype(np.uint8) for c in clip]
        r = temporal.warp_error(clip, noisy, masks)
        assert r.ratio > 1.5 and r.p95 > 1.5

    def test_blur_lowers_the_plain_ratio_but_not_the_normalised_one(self) -> None:
        """A blurred face has less gradient for the flow's misfit to act on: the plain ratio rewards
        it (read it with the sharpness ratio); per unit of detail it gains much less."""
        clip, masks = moving_clip()
        for sigma in (1.0, 2.0, 3.0):
            r = temporal.warp_error(clip, [cv2.GaussianBlur(c, (0, 0), sigma) for c in clip], masks)
            assert r.ratio < 0.6
            assert r.normalised_ratio > max(0.7, r.ratio + 0.2)

    def test_a_frozen_face_is_not_rewarded(self) -> None:
        """The face's first frame pasted in every frame (it follows the head, but the mouth never moves):
        the original's flow moves the mouth, the frozen face does not."""
        clip, masks = moving_clip()
        first = clip[0][40:160, 30:150]
        frozen = []
        for t, c in enumerate(clip):
            img = c.copy()
            img[40:160, 30 + 2 * t:150 + 2 * t] = first
            frozen.append(img)
        r = temporal.warp_error(clip, frozen, masks)
        assert r.normalised_ratio > 1.05
        # frozen in place on the frame (not following the head): much worse
        still = [np.where(m[..., None] > 0, clip[0], c).astype(np.uint8) for c, m in zip(clip, masks, strict=True)]
        assert temporal.warp_error(clip, still, masks).ratio > 2.0

    def test_no_mask_breaks_the_chain(self) -> None:
        clip, masks = moving_clip(6)
        masks[3] = None  # type: ignore[call-overload]
        assert temporal.warp_error(clip, clip, masks).pairs == 3

    def test_bad_input(self) -> None:
        with pytest.raises(ValueError, match="grey uint8"):
            temporal.dis_flow(np.zeros((8, 8), np.float32), np.zeros((8, 8), np.float32))
        with pytest.raises(ValueError, match="one merged frame"):
            temporal.warp_error([texture()], [], [])


def eye_image(iris_u: float, *, open_: float = 0.45, brightness: int = 0, size: int = 200
              ) -> tuple[np.ndarray, np.ndarray]:
    """A skin-coloured image with one almond eye (corners at x = 60 and 140, y = 100) and a dark
    iris centred at ``iris_u`` of the way between the corners; returns it and 68 landmarks with both
    eyes' points on this eye (the second copy shifted out of frame is not needed: same eye twice)."""
    img = np.full((size, size, 3), (190 + brightness, 150 + brightness, 130 + brightness), np.uint8)
    half = open_ * 80 / 2
    cv2.ellipse(img, (100, 100), (40, int(half)), 0, 0, 360, (235, 235, 235), -1, cv2.LINE_AA)
    mask = np.zeros((size, size), np.uint8)
    cv2.ellipse(mask, (100, 100), (40, int(half)), 0, 0, 360, 1, -1)
    iris = np.zeros_like(img)
    cv2.circle(iris, (int(60 + 80 * iris_u), 100), 14, (60, 40, 30), -1, cv2.LINE_AA)
    cv2.circle(iris, (int(60 + 80 * iris_u), 100), 6, (10, 10, 10), -1, cv2.LINE_AA)
    inside = (mask > 0)[..., None] & (iris.sum(-1, keepdims=True) > 0)
    img = np.where(inside, iris, img).astype(np.uint8)
    lm = np.zeros((68, 2))
    eye = np.array([[60, 100], [87, 100 - half * 0.94], [113, 100 - half * 0.94], [140, 100],
                    [113, 100 + half * 0.94], [87, 100 + half * 0.94]])
    lm[36:42] = eye
    lm[42:48] = eye
    return img, lm


class TestGaze:
    @pytest.mark.parametrize("u", [0.3, 0.4, 0.5, 0.6, 0.7])
    def test_finds_the_iris(self, u: float) -> None:
        img, lm = eye_image(u)
        pos = gaze.iris_positions(img, lm)
        assert pos[0, 0] == pytest.approx(u, abs=0.05)
        assert abs(pos[0, 1]) < 0.05

    def test_moves_with_the_iris_not_the_brightness(self) -> None:
        us = [gaze.iris_positions(*eye_image(u))[0, 0] for u in (0.35, 0.5, 0.65)]
        assert us[0] < us[1] < us[2]
        dim = gaze.iris_positions(*eye_image(0.5, brightness=-60))[0, 0]
        assert dim == pytest.approx(us[1], abs=0.03)

    def test_follows_the_eye_when_the_head_moves(self) -> None:
        img, lm = eye_image(0.6)
        m = cv2.getRotationMatrix2D((100, 100), 20, 1.3)
        moved = cv2.warpAffine(img, m, (200, 200), borderMode=cv2.BORDER_REPLICATE)
        lm2 = lm @ m[:, :2].T + m[:, 2]
        assert gaze.iris_positions(moved, lm2)[0, 0] == pytest.approx(0.6, abs=0.05)

    def test_closed_eye_is_unreadable(self) -> None:
        img, lm = eye_image(0.5, open_=0.12)
        assert np.isnan(gaze.iris_positions(img, lm)).all()

    def test_agreement(self) -> None:
        a = np.array([0.4, 0.5, 0.6, np.nan, 0.45, 0.55])
        corr, err = gaze.gaze_agreement(a, a + 0.01)
        assert corr == pytest.approx(1.0) and err == pytest.approx(0.01)
        frozen = np.full(6, 0.5)
        assert gaze.gaze_agreement(a, frozen)[0] is None
        assert gaze.gaze_signal(np.array([[[0.4, 0], [np.nan, np.nan]], [[np.nan] * 2] * 2]))[0] == 0.4

    def test_bad_landmarks(self) -> None:
        with pytest.raises(ValueError, match="landmarks"):
            gaze.iris_positions(np.zeros((10, 10, 3), np.uint8), np.zeros((5, 2)))
