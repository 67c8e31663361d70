"""Colour transfer maths, split into *fit* (statistics, a flat float64 vector) and *apply*.

Images are float32 ``(H, W, 3)`` RGB in [0, 1]; masks are ``(H, W)`` weights in [0, 1] choosing
the pixels whose statistics count (> 0.5 counts). Splitting fit from apply lets the merge smooth
the statistics over time (an exponential average of two statistics vectors is again valid
statistics: means, covariances, CDFs and monotone maps stay what they are).

Transfers (all map *source* colours so that they look like *target* colours):

- RCT, Reinhard et al. 2001: per-channel mean and standard deviation in CIE Lab.
- LCT, linear transfer: ``x -> A (x - mu_s) + mu_t`` with ``A = C_t^1/2 C_s^-1/2`` (symmetric roots),
  so the covariance of the result is ``C_t``.
- MKL, Pitie & Kokaram 2007: the Monge-Kantorovich linear map
  ``A = C_s^-1/2 (C_s^1/2 C_t C_s^1/2)^1/2 C_s^-1/2`` (covariance ``C_t``, least displacement).
- IDT, Pitie et al. 2005: iterative distribution transfer; 1-D distribution matching along the
  axes of fixed rotations, repeated.
- Histogram matching: per RGB channel, a monotone map between quantiles (source CDF, then the
  inverse target CDF).
"""

from __future__ import annotations

import cv2
import numpy as np

EPS = 1e-6
MAX_FIT_PIXELS = 16384  # statistics are computed on at most this many (evenly spaced) pixels


def _pixels(image: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """The masked pixels as ``(N, 3)`` float64, subsampled evenly to at most MAX_FIT_PIXELS."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {image.shape}")
    flat = image.reshape(-1, 3)
    if mask is not None:
        if mask.shape[:2] != image.shape[:2]:
            raise ValueError(f"mask shape {mask.shape} does not match image shape {image.shape}")
        sel = mask.reshape(-1) > 0.5
        if sel.sum() >= 16:
            flat = flat[sel]
    step = max(1, len(flat) // MAX_FIT_PIXELS)
    return flat[::step].astype(np.float64)


def _lab(image: np.ndarray) -> np.ndarray:
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {image.shape}")
    return cv2.cvtColor(np.ascontiguousarray(image, dtype=np.float32), cv2.COLOR_RGB2Lab)


def _rgb(lab: np.ndarray) -> np.ndarray:
    return np.clip(cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_Lab2RGB), 0.0, 1.0)


# -- RCT -------------------------------------------------------------------------------------------
def rct_fit(source: np.ndarray, target: np.ndarray, source_mask: np.ndarray | None = None,
            target_mask: np.ndarray | None = None) -> np.ndarray:
    """``[mean_s(3), std_s(3), mean_t(3), std_t(3)]`` in Lab."""
    s = _pixels(_lab(source), source_mask)
    t = _pixels(_lab(target), target_mask)
    return np.concatenate([s.mean(0), s.std(0), t.mean(0), t.std(0)])


def rct_apply(image: np.ndarray, params: np.ndarray) -> np.ndarray:
    mu_s, sd_s, mu_t, sd_t = params.reshape(4, 3)
    lab = _lab(image)
    gain = (sd_t / np.maximum(sd_s, EPS)).astype(np.float32)
    out = (lab - mu_s.astype(np.float32)) * gain + mu_t.astype(np.float32)
    out[..., 0] = np.clip(out[..., 0], 0, 100)
    return _rgb(out)


# -- LCT and MKL (both from means and covariances) -----------------------------------------------
def moments_fit(source: np.ndarray, target: np.ndarray, source_mask: np.ndarray | None = None,
                target_mask: np.ndarray | None = None) -> np.ndarray:
    """``[mean_s(3), cov_s(9), mean_t(3), cov_t(9)]`` in RGB."""
    s = _pixels(source, source_mask)
    t = _pixels(target, target_mask)
    return np.concatenate([s.mean(0), np.cov(s, rowvar=False).ravel(), t.mean(0), np.cov(t, rowvar=False).ravel()])


def _split_moments(params: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return params[0:3], params[3:12].reshape(3, 3), params[12:15], params[15:24].reshape(3, 3)


def _sqrtm(c: np.ndarray, *, inverse: bool = False) -> np.ndarray:
    vals, vecs = np.linalg.eigh((c + c.T) / 2)
    vals = np.maximum(vals, EPS)
    root = 1.0 / np.sqrt(vals) if inverse else np.sqrt(vals)
    return (vecs * root) @ vecs.T


def lct_matrix(cov_s: np.ndarray, cov_t: np.ndarray) -> np.ndarray:
    return _sqrtm(cov_t) @ _sqrtm(cov_s, inverse=True)


def mkl_matrix(cov_s: np.ndarray, cov_t: np.ndarray) -> np.ndarray:
    rs = _sqrtm(cov_s)
    rs_inv = _sqrtm(cov_s, inverse=True)
    return rs_inv @ _sqrtm(rs @ cov_t @ rs) @ rs_inv


def _affine_apply(image: np.ndarray, a: np.ndarray, mu_s: np.ndarray, mu_t: np.ndarray) -> np.ndarray:
    flat = image.reshape(-1, 3).astype(np.float32)
    out = (flat - mu_s.astype(np.float32)) @ a.T.astype(np.float32) + mu_t.astype(np.float32)
    return np.clip(out, 0.0, 1.0).reshape(image.shape)


def lct_apply(image: np.ndarray, params: np.ndarray) -> np.ndarray:
    mu_s, cov_s, mu_t, cov_t = _split_moments(params)
    return _affine_apply(image, lct_matrix(cov_s, cov_t), mu_s, mu_t)


def mkl_apply(image: np.ndarray, params: np.ndarray) -> np.ndarray:
    mu_s, cov_s, mu_t, cov_t = _split_moments(params)
    return _affine_apply(image, mkl_matrix(cov_s, cov_t), mu_s, mu_t)


# -- quantile matching (histogram matching and IDT) -----------------------------------------------
QUANTILES = 129  # levels at which 1-D distributions are summarised
_LEVELS = np.linspace(0.0, 1.0, QUANTILES)


def _quantiles(values: np.ndarray) -> np.ndarray:
    return np.quantile(values, _LEVELS)


def _match(values: np.ndarray, q_s: np.ndarray, q_t: np.ndarray) -> np.ndarray:
    """Monotone 1-D map taking the distribution summarised by ``q_s`` to the one of ``q_t``.

    Piecewise linear between quantiles; beyond the source range it shifts by the end offsets.
    """
    xp = q_s + np.arange(len(q_s)) * 1e-9  # strictly increasing for np.interp
    out = np.interp(values, xp, q_t)
    low, high = values < xp[0], values > xp[-1]
    out[low] = values[low] - xp[0] + q_t[0]
    out[high] = values[high] - xp[-1] + q_t[-1]
    return out


def hist_fit(source: np.ndarray, target: np.ndarray, source_mask: np.ndarray | None = None,
             target_mask: np.ndarray | None = None) -> np.ndarray:
    """``[quantiles_s (3 x Q), quantiles_t (3 x Q)]`` per RGB channel."""
    s = _pixels(source, source_mask)
    t = _pixels(target, target_mask)
    return np.concatenate([_quantiles(s[:, c]) for c in range(3)] + [_quantiles(t[:, c]) for c in range(3)])


def hist_apply(image: np.ndarray, params: np.ndarray) -> np.ndarray:
    q = params.reshape(6, QUANTILES)
    out = np.empty(image.shape, dtype=np.float32)
    for c in range(3):
        out[..., c] = _match(image[..., c].astype(np.float64).ravel(), q[c], q[3 + c]).reshape(image.shape[:2])
    return np.clip(out, 0.0, 1.0)


# -- IDT -----------------------------------------------------------------------------------------
IDT_ITERATIONS = 8
IDT_FIT_PIXELS = 4096  # IDT sorts 48 projections per fit: fewer pixels keep it fast


def _idt_rotations(n: int = IDT_ITERATIONS) -> np.ndarray:
    """Fixed orthonormal bases, the same for every frame so the maps can be averaged. The last is the
    identity, so the result's R, G and B marginals end up matched exactly."""
    rng = np.random.default_rng(1234)
    out: list[np.ndarray] = []
    while len(out) < n - 1:
        q, r = np.linalg.qr(rng.normal(size=(3, 3)))
        out.append(q * np.sign(np.diag(r)))
    return np.stack([*out, np.eye(3)])


_IDT_ROT = _idt_rotations()


def _idt_step(x: np.ndarray, rot: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Move ``x`` (N, 3) along the three rotated axes by the 1-D maps ``q`` (3, 2, Q)."""
    p = x @ rot.T
    moved = np.stack([_match(p[:, a], q[a, 0], q[a, 1]) for a in range(3)], axis=1)
    return x + (moved - p) @ rot


def idt_fit(source: np.ndarray, target: np.ndarray, source_mask: np.ndarray | None = None,
            target_mask: np.ndarray | None = None) -> np.ndarray:
    """Per iteration and rotated axis, the source and target quantiles: ``(ITER, 3, 2, Q)`` flattened."""
    s = _pixels(source, source_mask)
    t = _pixels(target, target_mask)
    s, t = s[:: max(1, len(s) // IDT_FIT_PIXELS)], t[:: max(1, len(t) // IDT_FIT_PIXELS)]
    out = np.empty((len(_IDT_ROT), 3, 2, QUANTILES))
    for i, rot in enumerate(_IDT_ROT):
        ps, pt = s @ rot.T, t @ rot.T
        for a in range(3):
            out[i, a, 0], out[i, a, 1] = _quantiles(ps[:, a]), _quantiles(pt[:, a])
        s = _idt_step(s, rot, out[i])
    return out.ravel()


def idt_apply(image: np.ndarray, params: np.ndarray) -> np.ndarray:
    q = params.reshape(len(_IDT_ROT), 3, 2, QUANTILES)
    x = image.reshape(-1, 3).astype(np.float64)
    for i, rot in enumerate(_IDT_ROT):
        x = _idt_step(x, rot, q[i])
    return np.clip(x, 0.0, 1.0).astype(np.float32).reshape(image.shape)
