"""Training augmentations: random parameters are drawn once, then replayed on image, mask and landmarks.

:func:`draw` makes an :class:`AugmentParams` (a flip, an affine jitter, a smooth random grid warp
and a colour jitter) from a NumPy generator; :func:`apply_image`, :func:`apply_mask` and
:func:`apply_points` replay the same geometry on each. The affine (with the flip folded in) and
the warp become one ``cv2.remap`` per image. ``warp=False`` replays the affine only: training
feeds the warped face and asks for the un-warped (but affine-jittered) target, as DeepFaceLab does.

Images are ``(S, S, C)`` uint8 or float32; landmarks ``(N, 2)`` float (x, y) in crop pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class AugmentSettings:
    rotation: float = 10.0       # degrees, uniform in [-r, r]
    scale: float = 0.05          # relative, uniform in [-s, s]
    shift: float = 0.05          # fraction of the size, uniform in [-t, t]
    flip: bool = True
    warp: bool = True
    warp_strength: float = 0.015  # grid point displacement, fraction of the size (std)
    brightness: float = 0.1
    contrast: float = 0.15
    saturation: float = 0.15


@dataclass(frozen=True)
class AugmentParams:
    """One draw. ``affine`` maps source crop pixels to output pixels (flip included); ``warp``
    is the dense displacement ``(S, S, 2)`` float32 added to output coordinates before the affine
    is undone (zero when warping is off)."""

    size: int
    affine: np.ndarray
    warp: np.ndarray | None
    brightness: float
    contrast: float
    saturation: float


def draw(rng: np.random.Generator, size: int, settings: AugmentSettings = AugmentSettings()) -> AugmentParams:
    """Draw one set of augmentation parameters for ``size`` x ``size`` crops."""
    s = settings
    angle = rng.uniform(-s.rotation, s.rotation)
    scale = 1.0 + rng.uniform(-s.scale, s.scale)
    tx, ty = rng.uniform(-s.shift, s.shift, 2) * size
    c = (size - 1) / 2.0
    m = cv2.getRotationMatrix2D((c, c), angle, scale)
    m[:, 2] += (tx, ty)
    if s.flip and rng.random() < 0.5:
        flip = np.array([[-1.0, 0.0, size - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        m = m @ flip
    warp = _grid_warp(rng, size, s.warp_strength) if s.warp else None
    return AugmentParams(size=size, affine=m, warp=warp,
                         brightness=float(rng.uniform(-s.brightness, s.brightness)),
                         contrast=float(1.0 + rng.uniform(-s.contrast, s.contrast)),
                         saturation=float(1.0 + rng.uniform(-s.saturation, s.saturation)))


def _grid_warp(rng: np.random.Generator, size: int, strength: float) -> np.ndarray:
    """A smooth displacement field: random offsets on a coarse grid, bicubically upsampled.

    The border rows/columns of the grid stay fixed so the face's outline moves least at the edges.
    """
    cells = int(rng.integers(4, 7))
    offsets = rng.normal(0.0, strength * size, (cells + 1, cells + 1, 2)).astype(np.float32)
    offsets[[0, -1], :] = 0
    offsets[:, [0, -1]] = 0
    return cv2.resize(offsets, (size, size), interpolation=cv2.INTER_CUBIC)


def _maps(p: AugmentParams, warp: bool) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:p.size, 0:p.size].astype(np.float32)
    if warp and p.warp is not None:
        xs = xs + p.warp[..., 0]
        ys = ys + p.warp[..., 1]
    inv = cv2.invertAffineTransform(p.affine).astype(np.float32)
    map_x = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
    map_y = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
    return map_x, map_y


def apply_geometry(image: np.ndarray, p: AugmentParams, *, warp: bool = True,
                   interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Replay the flip, affine and (if ``warp``) grid warp on an image or mask of size ``p.size``."""
    if image.shape[0] != p.size or image.shape[1] != p.size:
        raise ValueError(f"expected a {p.size}x{p.size} image, got {image.shape}")
    map_x, map_y = _maps(p, warp)
    out = cv2.remap(image, map_x, map_y, interpolation, borderMode=cv2.BORDER_REFLECT101)
    return out.reshape(image.shape)


def apply_colour(image: np.ndarray, p: AugmentParams) -> np.ndarray:
    """Brightness, contrast and saturation jitter on an RGB image; keeps the dtype (uint8 or float in [0, 1])."""
    x = image.astype(np.float32) / (255.0 if image.dtype == np.uint8 else 1.0)
    grey = x @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    x = grey[..., None] + (x - grey[..., None]) * p.saturation
    x = (x - 0.5) * p.contrast + 0.5 + p.brightness
    x = np.clip(x, 0.0, 1.0)
    return (x * 255.0 + 0.5).astype(np.uint8) if image.dtype == np.uint8 else x


def apply_image(image: np.ndarray, p: AugmentParams, *, warp: bool = True) -> np.ndarray:
    """Geometry then colour, for an RGB face crop."""
    return apply_colour(apply_geometry(image, p, warp=warp), p)


def apply_mask(mask: np.ndarray, p: AugmentParams, *, warp: bool = True) -> np.ndarray:
    """Geometry only, for a mask ``(S, S)`` or ``(S, S, 1)``."""
    return apply_geometry(mask, p, warp=warp)


def apply_points(points: np.ndarray, p: AugmentParams, *, warp: bool = True, iterations: int = 4) -> np.ndarray:
    """Move landmarks ``(N, 2)`` the way :func:`apply_geometry` moves the pixels under them.

    The remap pulls output pixel ``q`` from ``A^-1 (q + d(q))``, so a point ``x`` lands at the ``q``
    solving ``q + d(q) = A x``, found by fixed-point iteration (the warp is small and smooth).
    """
    pts = np.asarray(points, dtype=np.float64)
    target = pts @ p.affine[:, :2].T + p.affine[:, 2]
    if not warp or p.warp is None:
        return target
    q = target.copy()
    for _ in range(iterations):
        q = target - _sample(p.warp, q)
    return q


def _sample(field: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Bilinear sample of a ``(S, S, 2)`` field at points ``(N, 2)`` (clamped to the border)."""
    s = field.shape[0]
    x = np.clip(pts[:, 0], 0, s - 1.001)
    y = np.clip(pts[:, 1], 0, s - 1.001)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    f = field.astype(np.float64)
    return ((1 - fx) * (1 - fy) * f[y0, x0] + fx * (1 - fy) * f[y0, x0 + 1]
            + (1 - fx) * fy * f[y0 + 1, x0] + fx * fy * f[y0 + 1, x0 + 1])
