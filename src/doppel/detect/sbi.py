"""Self-blended images (Shiohara and Yamasaki, CVPR 2022): a fake made from one real face and itself.

A copy of the face (the *source*) is changed slightly (colour, sharpness, a small shift and scale) and
blended back into the original (the *target*) through a mask made from the landmark hull
(:func:`doppel.ops.face.hull_points`, the same hull merge cuts a swap with), deformed, grown or shrunk and
blurred. No generator is involved, so a detector trained on them learns what every swap has to do (a
blend boundary, mismatched colour and sharpness inside it) rather than one generator's fingerprint. The
blend also gives the face X-ray boundary ``4 M (1 - M)`` (Li et al., CVPR 2020) as a per-pixel target.

As in kornia, parameters are drawn apart from being applied (:func:`draw_params`, then
:func:`self_blend`), so one draw can be replayed, logged or tested.

Images are RGB uint8 ``(S, S, 3)`` aligned crops; landmarks float ``(68, 2)`` in crop pixels; masks
float32 ``(S, S)`` in [0, 1] (1 = source).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from doppel.ops.face import fill_hulls, hull_points


@dataclass(frozen=True)
class SBIParams:
    """One self-blend, every length a fraction of the crop size ``S``."""

    # the source's change
    gain: tuple[float, float, float]      # per-channel multiplier
    offset: tuple[float, float, float]    # per-channel shift, levels / 255
    contrast: float                       # about mid-grey
    sharpness: float                      # < 0: Gaussian blur of -sharpness * S; > 0: unsharp amount
    down: float                           # downscale factor then back up (1 = none): a softer render
    shift: tuple[float, float]            # source translation
    scale: float                          # source scale about the crop centre
    # the mask
    lift: float                           # forehead lift of the hull (merge's is 0.12)
    grow: float                           # > 0 dilate, < 0 erode, as a fraction of S
    warp: float                           # amplitude of a smooth random deformation of the mask
    warp_seed: int
    feather: float                        # Gaussian sigma of the mask edge
    opacity: float                        # the mask's maximum (a partial blend)
    swap_roles: bool                      # change the target instead, blend the original in as the source


def draw_params(rng: np.random.Generator) -> SBIParams:
    """Random parameters in the ranges of the SBI paper (colour, frequency, small geometry, mask shape)."""
    return SBIParams(
        gain=tuple(float(g) for g in rng.uniform(0.9, 1.1, 3)),  # type: ignore[arg-type]
        offset=tuple(float(o) for o in rng.uniform(-0.06, 0.06, 3)),  # type: ignore[arg-type]
        contrast=float(rng.uniform(0.85, 1.15)),
        sharpness=float(rng.choice([-1.0, 1.0, 0.0], p=[0.45, 0.25, 0.3]) * rng.uniform(0.003, 0.012)),
        down=float(rng.choice([1.0, rng.uniform(0.3, 0.8)], p=[0.6, 0.4])),
        shift=(float(rng.uniform(-0.03, 0.03)), float(rng.uniform(-0.03, 0.03))),
        scale=float(rng.uniform(0.95, 1.05)),
        lift=float(rng.uniform(0.0, 0.25)),
        grow=float(rng.uniform(-0.04, 0.03)),
        warp=float(rng.uniform(0.0, 0.03)),
        warp_seed=int(rng.integers(0, 2**31)),
        feather=float(rng.uniform(0.005, 0.05)),
        opacity=float(rng.choice([1.0, rng.uniform(0.5, 1.0)], p=[0.7, 0.3])),
        swap_roles=bool(rng.random() < 0.5),
    )


def _changed(image: np.ndarray, p: SBIParams) -> np.ndarray:
    """The source: colour, contrast, sharpness and resolution changed, then shifted and scaled."""
    s = image.shape[0]
    x: np.ndarray = image.astype(np.float32) / 255.0
    x = (x - 0.5) * p.contrast + 0.5
    x = x * np.asarray(p.gain, np.float32) + np.asarray(p.offset, np.float32)
    if p.sharpness < 0:
        x = cv2.GaussianBlur(x, (0, 0), max(0.3, -p.sharpness * s))
    elif p.sharpness > 0:
        x = x + 60.0 * p.sharpness * (x - cv2.GaussianBlur(x, (0, 0), max(0.5, 0.006 * s)))
    if p.down < 1.0:
        small = max(8, round(s * p.down))
        x = cv2.resize(cv2.resize(x, (small, small), interpolation=cv2.INTER_AREA), (s, s),
                       interpolation=cv2.INTER_LINEAR)
    m = cv2.getRotationMatrix2D((s / 2, s / 2), 0.0, p.scale)
    m[:, 2] += np.asarray(p.shift) * s
    x = cv2.warpAffine(x, m, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)


def blend_mask(landmarks: np.ndarray, size: int, p: SBIParams) -> np.ndarray:
    """The deformed, feathered hull mask, float32 ``(S, S)`` in [0, ``opacity``]."""
    mask = fill_hulls([hull_points(landmarks, lift=p.lift)], (size, size), antialias=False)
    radius = round(abs(p.grow) * size)
    if radius:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        mask = cv2.dilate(mask, kernel) if p.grow > 0 else cv2.erode(mask, kernel)
    if p.warp > 0:
        rng = np.random.default_rng(p.warp_seed)
        coarse = rng.normal(0, 1, (2, 5, 5)).astype(np.float32)
        flow = [cv2.resize(c, (size, size), interpolation=cv2.INTER_CUBIC) * p.warp * size for c in coarse]
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        mask = cv2.remap(mask, xx + flow[0], yy + flow[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    mask = cv2.GaussianBlur(mask, (0, 0), max(0.5, p.feather * size))
    return (np.clip(mask, 0.0, 1.0) * p.opacity).astype(np.float32)


def boundary(mask: np.ndarray) -> np.ndarray:
    """The face X-ray: ``4 M (1 - M)``, 1 on the middle of the blend edge, 0 inside and outside."""
    return (4.0 * mask * (1.0 - mask)).astype(np.float32)


def self_blend(image: np.ndarray, landmarks: np.ndarray, p: SBIParams) -> tuple[np.ndarray, np.ndarray]:
    """The self-blended fake ``(S, S, 3)`` uint8 and its blend mask ``(S, S)`` float32."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or image.shape[0] != image.shape[1]:
        raise ValueError(f"expected a square RGB uint8 (S, S, 3) crop, got {image.shape} {image.dtype}")
    changed = _changed(image, p)
    source, target = (image, changed) if p.swap_roles else (changed, image)
    mask = blend_mask(landmarks, image.shape[0], p)
    m = mask[..., None]
    fake = source.astype(np.float32) * m + target.astype(np.float32) * (1.0 - m)
    return np.clip(fake + 0.5, 0, 255).astype(np.uint8), mask
