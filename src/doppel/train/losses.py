"""Losses for the face model, EMA weights, and the optional patch discriminator.

All tensors are float32 NCHW: images ``(N, 3, R, R)`` RGB in [0, 1], masks ``(N, 1, R, R)`` in
[0, 1]. The reconstruction loss follows SAEHD's recipe: structural dissimilarity at two window
sizes plus a pixel term, computed on faces multiplied by a softened face mask, with extra weight
on the eyes and mouth, and a mask term.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn


@functools.cache
def _gauss(size: int, sigma: float, device: torch.device) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


@functools.cache
def blur_matrix(n: int, size: int, sigma: float, device: torch.device) -> torch.Tensor:
    """``(n, n)`` matrix ``B`` with ``B @ v`` = Gaussian blur of a length-``n`` signal, reflect-padded."""
    g = _gauss(size, sigma, torch.device("cpu"))
    pad = size // 2
    i = torch.arange(n).repeat_interleave(size)
    j = torch.arange(n)[:, None] + torch.arange(size)[None, :] - pad
    j = j.abs()
    j = torch.where(j >= n, 2 * (n - 1) - j, j).flatten()
    m = torch.zeros(n, n).index_put_((i, j), g.repeat(n), accumulate=True)
    return m.to(device)


def blur(x: torch.Tensor, size: int, sigma: float | None = None) -> torch.Tensor:
    """Separable Gaussian blur of ``(N, C, H, W)`` with an odd ``size`` window ('same', reflect padding).

    Done as two matrix products with banded blur matrices: on CPUs this is faster than a depthwise
    convolution, forward and backward.
    """
    size = max(3, size | 1)
    sig = sigma if sigma is not None else size / 6.0
    h, w = x.shape[-2:]
    bh, bw = blur_matrix(h, size, sig, x.device), blur_matrix(w, size, sig, x.device)
    return bh @ x @ bw.T


def ssim(x: torch.Tensor, y: torch.Tensor, window: int) -> torch.Tensor:
    """Per-pixel SSIM map ``(N, C, H, W)`` of two images in [0, 1] with a Gaussian window."""
    c1, c2 = 0.01**2, 0.03**2
    c = x.shape[1]
    stats = blur(torch.cat([x, y, x * x, y * y, x * y], 1), window, 1.5 * window / 11)
    mx, my, xx, yy, xy = stats.split(c, 1)
    vx, vy, cov = xx - mx * mx, yy - my * my, xy - mx * my
    return ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))


def dssim(x: torch.Tensor, y: torch.Tensor, window: int) -> torch.Tensor:
    """Structural dissimilarity ``(1 - SSIM) / 2``, averaged: a scalar in [0, 1]."""
    return ((1 - ssim(x, y, window)) / 2).mean()


def ssim_windows(resolution: int) -> tuple[int, int]:
    """The two SSIM window sizes SAEHD uses for a resolution (about R/11.6 and R/23.2)."""
    return max(3, int(resolution / 11.6) | 1), max(3, int(resolution / 23.2) | 1)


def soft_mask(mask: torch.Tensor) -> torch.Tensor:
    """The target face mask, blurred so the loss fades out across the face edge."""
    r = mask.shape[-1]
    return blur(mask, r // 16 | 1).clamp(0, 1)


def spectrum_loss(pred: torch.Tensor, target: torch.Tensor, scale: int) -> torch.Tensor:
    """L1 between the log amplitude spectra of ``(N, 3, H, W)`` images' luma, over the frequencies above
    ``0.5 / scale`` cycles per pixel: for the detail network (``scale`` its upscale factor) the band only it can
    supply; for the face model (``scale`` 2) the top octave of its resolution, which pixel losses leave soft.

    The amplitude of a patch's spectrum does not depend on where in the patch a pore or an eyelash sits, so
    this asks for texture of the right strength at each frequency without asking for it at exact pixels:
    pixel losses cannot, and average the unpredictable detail away (a blur).
    """
    luma = lambda x: (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).float()  # noqa: E731
    a, b = torch.fft.rfft2(luma(pred), norm="ortho").abs(), torch.fft.rfft2(luma(target), norm="ortho").abs()
    fy = torch.fft.fftfreq(pred.shape[-2], device=a.device).abs()[:, None]
    fx = torch.fft.rfftfreq(pred.shape[-1], device=a.device)[None, :]
    band = (torch.maximum(fy, fx) > 0.5 / scale).to(a.dtype)
    diff = (torch.log1p(a * 255.0) - torch.log1p(b * 255.0)).abs() * band
    return diff.sum() / (band.sum() * a.shape[0]).clamp(min=1)


def face_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, eyes_mouth: torch.Tensor, *,
              ssim_weight: float = 1.0, pixel: str = "mse", pixel_weight: float = 1.0,
              eyes_mouth_weight: float = 10.0, grad_weight: float = 0.0, spectrum_weight: float = 0.0
              ) -> dict[str, torch.Tensor]:
    """Masked multi-window DSSIM + pixel loss + eyes/mouth L1 (+ image-gradient L1 when ``grad_weight``, + the
    top octave's amplitude spectrum when ``spectrum_weight``) for one side; returns named scalars."""
    m = soft_mask(mask)
    p, t = pred * m, target * m
    w1, w2 = ssim_windows(pred.shape[-1])
    out = {"ssim": 5.0 * ssim_weight * (dssim(p, t, w1) + dssim(p, t, w2))}
    diff = p - t
    out["pixel"] = 10.0 * pixel_weight * (diff.abs().mean() if pixel == "l1" else diff.square().mean())
    out["eyes_mouth"] = 10.0 * eyes_mouth_weight * (diff.abs() * eyes_mouth).mean()
    if grad_weight:  # edges of the right strength in the right place: what MSE and DSSIM let go soft
        dx, dy = diff[..., :, 1:] - diff[..., :, :-1], diff[..., 1:, :] - diff[..., :-1, :]
        out["grad"] = 10.0 * grad_weight * (dx.abs().mean() + dy.abs().mean())
    if spectrum_weight:  # texture of the right strength where random warp makes its exact place unpredictable
        out["spectrum"] = spectrum_weight * spectrum_loss(p, t, 2)
    return out


def mask_loss(pred_mask: torch.Tensor, target_mask: torch.Tensor, weight: float = 1.0) -> torch.Tensor:
    return 10.0 * weight * (pred_mask - target_mask).square().mean()


class PatchDiscriminator(nn.Module):
    """A small patch-GAN critic: ``(N, 3, R, R)`` -> logits ``(N, 1, R/8, R/8)``, one per patch."""

    def __init__(self, dims: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for i, cout in enumerate((dims, dims * 2, dims * 4)):
            layers += [nn.Conv2d(cin, cout, 4, stride=2, padding=1)]
            if i:
                layers += [nn.GroupNorm(8, cout)]
            layers += [nn.LeakyReLU(0.2)]
            cin = cout
        layers += [nn.Conv2d(cin, cin, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(cin, 1, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x * 2 - 1)


def gan_generator_loss(critic: nn.Module, fake: torch.Tensor, power: float) -> torch.Tensor:
    logits = critic(fake)
    return power * F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))


def gan_critic_loss(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    lr, lf = critic(real), critic(fake.detach())
    return 0.5 * (F.binary_cross_entropy_with_logits(lr, torch.ones_like(lr))
                  + F.binary_cross_entropy_with_logits(lf, torch.zeros_like(lf)))


class EMA:
    """An exponential moving average of a model's parameters, kept in a frozen copy ``shadow``."""

    def __init__(self, model: nn.Module, shadow: nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = shadow.requires_grad_(False).eval()
        self._src: list[torch.Tensor] = list(model.parameters())
        self._dst: list[torch.Tensor] = list(self.shadow.parameters())
        self.copy_from(model)

    @torch.no_grad()
    def copy_from(self, model: nn.Module) -> None:
        for d, s in zip(self._dst, model.parameters(), strict=True):
            d.copy_(s)

    def decay_at(self, step: int) -> float:
        """The decay used for update number ``step`` (0-based): warmed up as (1 + step) / (10 + step)
        so that a short run's average is not dominated by the random initial weights."""
        return min(self.decay, (1.0 + step) / (10.0 + step))

    @torch.no_grad()
    def update(self, step: int) -> None:
        torch._foreach_lerp_(self._dst, self._src, 1.0 - self.decay_at(step))
