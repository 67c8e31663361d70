"""Painting occluders: one drawn :class:`Occluder` applied to an image and to its exact masks.

Occluders are described in *face coordinates* (see :func:`face_frame`): origin between the eye
centres, x along the eye line, unit = the inter-ocular distance, y pointing down the face. So one
draw replays on an aligned crop, on the full frame it came from, and on every frame of a clip
(the occluder moves with the head unless its ``offset`` is animated).

Conventions: images are float32 ``(H, W, 3)`` RGB in [0, 1]; masks float32 ``(H, W)`` in [0, 1];
landmarks ``(68, 2)`` (x, y) pixels of the image painted on.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import cv2
import numpy as np

from doppel.ops.face import eye_centres

Label = Literal["occluder", "glasses", "clear"]  # what a part counts as in the labels
Texture = Literal["none", "noise", "stripes", "patch"]


def face_frame(landmarks: np.ndarray) -> np.ndarray:
    """The ``(2, 3)`` affine map from face coordinates to image pixels for these landmarks."""
    left, right = eye_centres(landmarks)
    x = right - left
    unit = max(float(np.linalg.norm(x)), 1e-6)
    x = x / unit
    y = np.array([-x[1], x[0]])
    return np.array([[x[0] * unit, y[0] * unit, (left[0] + right[0]) / 2],
                     [x[1] * unit, y[1] * unit, (left[1] + right[1]) / 2]], dtype=np.float64)


@dataclass(frozen=True)
class Fill:
    """How a part is coloured: ``colour`` RGB in [0, 1], a linear ``gradient`` (brightness change per face
    unit along x, y), an optional texture, and an optional dark ``rim`` (width in face units, 0..1 darkness)."""

    colour: tuple[float, float, float]
    gradient: tuple[float, float] = (0.0, 0.0)
    texture: Texture = "none"
    texture_scale: float = 0.1  # face units per texture cell / stripe period
    texture_strength: float = 0.0
    texture_angle: float = 0.0
    seed: int = 0
    patch: np.ndarray | None = None  # uint8 (h, w, 3) RGB image stretched over the part (texture "patch")
    rim_width: float = 0.0
    rim_dark: float = 0.0


@dataclass(frozen=True)
class Part:
    """A filled polygon (face coordinates, ``(K, 2)``), with an optional hole; ``opacity`` in [0, 1]."""

    polygon: np.ndarray
    fill: Fill
    label: Label = "occluder"
    hole: np.ndarray | None = None
    opacity: float = 1.0


@dataclass(frozen=True)
class Occluder:
    """Parts painted in order, shifted by ``offset`` (face units), then motion-blurred over
    ``blur_length`` face units at ``blur_angle`` radians."""

    kind: str
    parts: tuple[Part, ...]
    offset: tuple[float, float] = (0.0, 0.0)
    blur_length: float = 0.0
    blur_angle: float = 0.0
    meta: dict[str, float] = field(default_factory=dict)

    def moved(self, dx: float, dy: float) -> Occluder:
        """The same occluder shifted by ``(dx, dy)`` more face units (for animating a sweep)."""
        return replace(self, offset=(self.offset[0] + dx, self.offset[1] + dy))


@dataclass
class Painted:
    """The result of painting: the image and its exact masks (float32 ``(H, W)`` in [0, 1])."""

    image: np.ndarray
    occluder: np.ndarray  # opaque things in front of the face, glasses excluded
    glasses: np.ndarray  # glasses frames and dark lenses, minus what covers them


def _to_image(points: np.ndarray, frame: np.ndarray, offset: tuple[float, float]) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64) + np.asarray(offset)
    return pts @ frame[:, :2].T + frame[:, 2]


def _fill_poly(shape: tuple[int, int], pts: np.ndarray) -> np.ndarray:
    canvas = np.zeros(shape, np.uint8)
    cv2.fillPoly(canvas, [np.round(pts * 16).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=4)
    return canvas.astype(np.float32) / 255.0


def _texture(fill: Fill, shape: tuple[int, int], frame: np.ndarray, bbox: tuple[int, int, int, int]) -> np.ndarray:
    """Per-pixel RGB of the fill over the image (only ``bbox`` = x0, y0, x1, y1 is computed)."""
    h, w = shape
    x0, y0, x1, y1 = bbox
    out = np.zeros((h, w, 3), np.float32)
    if x1 <= x0 or y1 <= y0:
        return out
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    inv = cv2.invertAffineTransform(frame)
    u = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
    v = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
    if fill.texture == "patch" and fill.patch is not None:
        patch = cv2.resize(fill.patch, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        rgb = patch.astype(np.float32) / 255.0
    else:
        rgb = np.broadcast_to(np.asarray(fill.colour, np.float32), (y1 - y0, x1 - x0, 3)).copy()
    shade = 1.0 + fill.gradient[0] * (u - u.mean()) + fill.gradient[1] * (v - v.mean())
    if fill.texture == "noise" and fill.texture_strength > 0:
        rng = np.random.default_rng(fill.seed)
        cells = rng.standard_normal((64, 64)).astype(np.float32)
        cu = np.mod(u / max(fill.texture_scale, 1e-3), 64).astype(np.float32)
        cv = np.mod(v / max(fill.texture_scale, 1e-3), 64).astype(np.float32)
        shade = shade + fill.texture_strength * cv2.remap(cells, cu, cv, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
    elif fill.texture == "stripes" and fill.texture_strength > 0:
        t = u * np.cos(fill.texture_angle) + v * np.sin(fill.texture_angle)
        shade = shade + fill.texture_strength * np.sign(np.sin(2 * np.pi * t / max(fill.texture_scale, 1e-3)))
    out[y0:y1, x0:x1] = np.clip(rgb * shade[..., None].astype(np.float32), 0.0, 1.0)
    return out


def _bbox(alpha: np.ndarray) -> tuple[int, int, int, int]:
    x, y, w, h = cv2.boundingRect((alpha > 0).astype(np.uint8))
    return x, y, x + w, y + h


def _motion_blur(arrays: list[np.ndarray], length_px: float, angle: float) -> list[np.ndarray]:
    n = round(length_px)
    if n < 2:
        return arrays
    k = np.zeros((n | 1, n | 1), np.float32)
    c = (n | 1) // 2
    dx, dy = np.cos(angle) * c, np.sin(angle) * c
    cv2.line(k, (round(c - dx), round(c - dy)), (round(c + dx), round(c + dy)), 1.0, 1, cv2.LINE_AA)
    k /= max(float(k.sum()), 1e-6)
    return [cv2.filter2D(a, -1, k, borderType=cv2.BORDER_CONSTANT) for a in arrays]


def paint(image: np.ndarray, landmarks: np.ndarray, occluders: list[Occluder] | tuple[Occluder, ...]) -> Painted:
    """Paint ``occluders`` (in order, later ones on top) over ``image`` for a face with these landmarks.

    Returns the painted image and the exact occluder and glasses masks (``clear`` parts, e.g.
    clear lenses, change the image but neither mask).
    """
    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected a float (H, W, 3) RGB image in [0, 1], got shape {img.shape}")
    h, w = img.shape[:2]
    frame = face_frame(landmarks)
    unit = float(np.hypot(frame[0, 0], frame[1, 0]))
    out = img.copy()
    occ = np.zeros((h, w), np.float32)
    glasses = np.zeros((h, w), np.float32)
    for o in occluders:
        rgb: np.ndarray = np.zeros((h, w, 3), np.float32)  # premultiplied colour of this occluder
        alpha: np.ndarray = np.zeros((h, w), np.float32)
        lab_occ: np.ndarray = np.zeros((h, w), np.float32)
        lab_gl: np.ndarray = np.zeros((h, w), np.float32)
        for part in o.parts:
            a = _fill_poly((h, w), _to_image(part.polygon, frame, o.offset))
            if part.hole is not None:
                a *= 1.0 - _fill_poly((h, w), _to_image(part.hole, frame, o.offset))
            if not a.any():
                continue
            colour = _texture(part.fill, (h, w), frame, _bbox(a))
            if part.fill.rim_width > 0 and part.fill.rim_dark > 0:
                r = max(1, round(part.fill.rim_width * unit))
                inner = cv2.erode(a, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
                rim = cv2.GaussianBlur(a - inner, (0, 0), max(r / 2.0, 0.5))
                colour *= (1.0 - part.fill.rim_dark * np.clip(rim, 0, 1))[..., None]
            a = a * part.opacity
            rgb = rgb * (1.0 - a[..., None]) + colour * a[..., None]
            alpha = alpha + a * (1.0 - alpha)
            solid = a if part.label != "clear" else np.zeros_like(a)
            if part.label == "glasses":
                lab_gl = lab_gl + solid * (1.0 - lab_gl)
                lab_occ = lab_occ * (1.0 - solid)
            elif part.label == "occluder":
                lab_occ = lab_occ + solid * (1.0 - lab_occ)
                lab_gl = lab_gl * (1.0 - solid)
        if o.blur_length > 0:
            rgb, alpha, lab_occ, lab_gl = _motion_blur([rgb, alpha, lab_occ, lab_gl], o.blur_length * unit,
                                                       o.blur_angle)
        out = out * (1.0 - alpha[..., None]) + rgb
        occ = occ * (1.0 - lab_occ - lab_gl).clip(0, 1) + lab_occ
        glasses = glasses * (1.0 - lab_occ - lab_gl).clip(0, 1) + lab_gl
    return Painted(np.clip(out, 0.0, 1.0), np.clip(occ, 0.0, 1.0), np.clip(glasses, 0.0, 1.0))
