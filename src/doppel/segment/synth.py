"""Synthetic occluders: random draws of hands, pens, microphones, glasses, sunglasses, shapes,
textures and pieces of other faces, each an :class:`~doppel.segment.paint.Occluder`.

Drawing is apart from painting (:func:`doppel.segment.paint.paint`), so one draw is replayed on a
crop, its masks and every frame of a clip. Everything is in face coordinates (origin between the
eyes, unit = inter-ocular distance, y down: eyes at y 0, nose tip ~0.75, mouth ~1.25, chin ~2).

Families are split in two: :data:`TRAIN_KINDS` are what segmenters are trained on;
:data:`HELD_OUT_KINDS` (other shapes: crescents, fists, phones, cups, aviator sunglasses, the
rimmed skin blob of issue 13) are kept for evaluation only.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from typing import Literal

import numpy as np

from doppel.segment.paint import Fill, Label, Occluder, Part, Texture

Split = Literal["train", "held_out"]
TRAIN_KINDS = ("blob", "texture", "face_patch", "hand", "pen", "mic", "glasses", "sunglasses")
HELD_OUT_KINDS = ("crescent", "fist", "phone", "cup", "aviator", "rimmed_blob")
EYEWEAR = ("glasses", "sunglasses", "aviator")
P_EYEWEAR = 0.3  # chance that a drawn scene has glasses or sunglasses
OCCLUDER_COUNTS = (0.35, 0.5, 0.15)  # chance of 0, 1 or 2 other occluders in a scene
# how often each family is drawn (others: 1): skin-toned things in front of skin are the hard case
KIND_WEIGHTS = {"hand": 2.5, "blob": 1.5, "face_patch": 1.5}
P_SKIN_SHAPE = 0.4  # chance that a blob or texture is skin-toned

Rng = np.random.Generator
TEXTURES: tuple[Texture, ...] = ("none", "noise", "stripes")


# -- shapes (face coordinates) ----------------------------------------------------------------------
def ellipse(cx: float, cy: float, ax: float, ay: float, angle: float = 0.0, n: int = 36) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    pts = np.stack([ax * np.cos(t), ay * np.sin(t)], 1)
    return _rotate(pts, angle) + np.array([cx, cy])


def capsule(p0: Sequence[float] | np.ndarray, p1: Sequence[float] | np.ndarray, r: float, n: int = 10) -> np.ndarray:
    a, b = np.asarray(p0, np.float64), np.asarray(p1, np.float64)
    d = b - a
    theta = np.arctan2(d[1], d[0])
    t1 = np.linspace(theta + np.pi / 2, theta + 3 * np.pi / 2, n)
    t2 = np.linspace(theta - np.pi / 2, theta + np.pi / 2, n)
    arc1 = a + r * np.stack([np.cos(t1), np.sin(t1)], 1)
    return np.concatenate([arc1, b + r * np.stack([np.cos(t2), np.sin(t2)], 1)])


def rounded_rect(cx: float, cy: float, w: float, h: float, r: float, angle: float = 0.0) -> np.ndarray:
    r = min(r, w / 2, h / 2)
    corners = [(w / 2 - r, h / 2 - r, 0.0), (-w / 2 + r, h / 2 - r, np.pi / 2),
               (-w / 2 + r, -h / 2 + r, np.pi), (w / 2 - r, -h / 2 + r, 1.5 * np.pi)]
    pts = [np.array([x, y]) + r * np.array([np.cos(a0 + t), np.sin(a0 + t)])
           for x, y, a0 in corners for t in np.linspace(0, np.pi / 2, 6)]
    return _rotate(np.array(pts), angle) + np.array([cx, cy])


def blob(rng: Rng, cx: float, cy: float, radius: float, spikes: int = 0) -> np.ndarray:
    """A smooth random star-shaped blob (``spikes`` > 0: a star with that many points)."""
    n = 48
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    if spikes:
        r = np.where(np.arange(n) % (n // spikes) < n // spikes // 2, 1.0, 0.5)
    else:
        r = np.ones(n)
        for k in range(1, 4):
            r += rng.uniform(-0.25, 0.25) / k * np.cos(k * t + rng.uniform(0, 2 * np.pi))
    return np.stack([cx + radius * r * np.cos(t), cy + radius * r * np.sin(t)], 1)


def _rotate(pts: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.asarray(pts, np.float64) @ np.array([[c, s], [-s, c]])


def _place(pts: np.ndarray, angle: float, at: Sequence[float]) -> np.ndarray:
    return _rotate(pts, angle) + np.asarray(at, np.float64)


# -- colours ----------------------------------------------------------------------------------------
def skin_tone(rng: Rng, near: Sequence[float] | None = None) -> tuple[float, float, float]:
    """A skin colour: near ``near`` (e.g. the face's own, RGB in [0, 1]) or from light to dark."""
    if near is not None and rng.random() < 0.6:
        base = np.asarray(near, np.float64) * rng.uniform(0.8, 1.15) + rng.normal(0, 0.03, 3)
    else:
        t = rng.random()
        base = (1 - t) * np.array([0.93, 0.76, 0.64]) + t * np.array([0.33, 0.2, 0.13]) + rng.normal(0, 0.03, 3)
    r, g, b = np.clip(base, 0.02, 1.0)
    return float(r), float(g), float(b)


def any_colour(rng: Rng, dark: bool = False) -> tuple[float, float, float]:
    v = rng.uniform(0.03, 0.3) if dark else rng.uniform(0.1, 1.0)
    r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0, 1) ** 1.5, v)
    return float(r), float(g), float(b)


def _fill(rng: Rng, colour: tuple[float, float, float], *, texture: bool = True, rim: float = 0.0) -> Fill:
    kind: Texture = TEXTURES[int(rng.choice(3, p=[0.4, 0.45, 0.15]))] if texture else "none"
    return Fill(colour, gradient=(float(rng.normal(0, 0.25)), float(rng.normal(0, 0.25))), texture=kind,
                texture_scale=float(rng.uniform(0.03, 0.3)), texture_strength=float(rng.uniform(0.02, 0.2)),
                texture_angle=float(rng.uniform(0, np.pi)), seed=int(rng.integers(1 << 30)),
                rim_width=rim, rim_dark=float(rng.uniform(0.3, 0.8)) if rim else 0.0)


def _spot(rng: Rng) -> tuple[float, float]:
    """A point on the face where an occluder centres."""
    return float(rng.uniform(-1.0, 1.0)), float(rng.uniform(-0.5, 2.0))


def _blur(rng: Rng, p: float = 0.3) -> tuple[float, float]:
    return (float(rng.uniform(0.05, 0.4)), float(rng.uniform(0, np.pi))) if rng.random() < p else (0.0, 0.0)


# -- families -------------------------------------------------------------------------------------
def _hand(rng: Rng, skin: Sequence[float] | None, fist: bool) -> Occluder:
    s = rng.uniform(0.9, 1.6)
    fill = _fill(rng, skin_tone(rng, skin), texture=False, rim=float(rng.uniform(0.0, 0.04)))
    fill = Fill(fill.colour, fill.gradient, "noise", 0.05, float(rng.uniform(0.0, 0.05)), 0.0, fill.seed,
                None, fill.rim_width, fill.rim_dark)
    parts = [ellipse(0, 0, 0.55 * s, 0.62 * s)]
    if fist:
        parts += [ellipse(x * s, -0.55 * s, 0.16 * s, 0.14 * s) for x in (-0.36, -0.12, 0.12, 0.36)]
        parts.append(capsule((0.5 * s, 0.1 * s), (-0.1 * s, -0.25 * s), 0.12 * s))
    else:
        spread = rng.uniform(0.0, 0.25)
        for i, x in enumerate((-0.36, -0.12, 0.12, 0.36)):
            length = s * rng.uniform(0.55, 1.0) * (0.85 if i in (0, 3) else 1.0)
            a = -np.pi / 2 + (i - 1.5) * spread
            base = np.array([x * s, -0.45 * s])
            parts.append(capsule(base, base + length * np.array([np.cos(a), np.sin(a)]), s * rng.uniform(0.09, 0.13)))
        ta = rng.uniform(-1.2, -0.3)
        tb = np.array([0.42 * s, 0.1 * s])
        parts.append(capsule(tb, tb + 0.6 * s * np.array([np.cos(ta), np.sin(ta)]), 0.12 * s))
    angle = rng.uniform(-np.pi, np.pi)
    at = _spot(rng)
    length, direction = _blur(rng)
    return Occluder("fist" if fist else "hand", tuple(Part(_place(p, angle, at), fill) for p in parts),
                    blur_length=length, blur_angle=direction)


def _stick(rng: Rng, mic: bool) -> Occluder:
    at = np.array(_spot(rng))
    angle = rng.uniform(0, 2 * np.pi)
    length = rng.uniform(1.0, 3.0)
    d = np.array([np.cos(angle), np.sin(angle)])
    r = rng.uniform(0.04, 0.09) if not mic else rng.uniform(0.08, 0.14)
    col = any_colour(rng, dark=rng.random() < 0.5)
    parts = [Part(capsule(at - d * length / 2, at + d * length / 2, r), _fill(rng, col, texture=False))]
    if mic:
        head = at + d * length / 2
        parts.append(Part(ellipse(head[0], head[1], r * 2.4, r * 2.4), Fill(any_colour(rng, dark=True), (0.2, 0.2),
                          "stripes", 0.04, 0.4, float(rng.uniform(0, np.pi)), int(rng.integers(1 << 30)))))
    length_b, direction = _blur(rng)
    return Occluder("mic" if mic else "pen", tuple(parts), blur_length=length_b, blur_angle=direction)


def _shape(rng: Rng, kind: str, skin: Sequence[float] | None, patches: Sequence[np.ndarray]) -> Occluder:
    cx, cy = _spot(rng)
    radius = rng.uniform(0.25, 0.9)
    hole = None
    if kind == "crescent":
        poly = ellipse(cx, cy, radius, radius)
        off = rng.uniform(0.3, 0.6) * radius
        a = rng.uniform(0, 2 * np.pi)
        hole = ellipse(cx + off * np.cos(a), cy + off * np.sin(a), radius, radius)
    elif kind == "texture":
        poly = rounded_rect(cx, cy, 2 * radius, rng.uniform(0.5, 2) * radius, 0.05, rng.uniform(0, np.pi))
    else:
        poly = blob(rng, cx, cy, radius)
    if kind == "face_patch" and patches:
        src = patches[int(rng.integers(len(patches)))]
        h, w = src.shape[:2]
        ph, pw = int(h * rng.uniform(0.3, 0.7)), int(w * rng.uniform(0.3, 0.7))
        y0, x0 = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
        fill = Fill((0.5, 0.5, 0.5), texture="patch", patch=np.ascontiguousarray(src[y0:y0 + ph, x0:x0 + pw]))
    elif kind == "rimmed_blob":
        fill = Fill(skin_tone(rng, skin), (0.1, 0.2), "noise", 0.08, 0.03, 0.0, int(rng.integers(1 << 30)),
                    rim_width=float(rng.uniform(0.04, 0.1)), rim_dark=float(rng.uniform(0.5, 0.9)))
        poly = blob(rng, cx, cy, rng.uniform(0.5, 0.9))
    else:
        texture = kind == "texture"
        rim = float(rng.uniform(0.02, 0.08)) if rng.random() < 0.25 else 0.0
        fill = _fill(rng, skin_tone(rng, skin) if rng.random() < P_SKIN_SHAPE else any_colour(rng), texture=texture,
                     rim=rim)
    length, direction = _blur(rng, 0.2)
    return Occluder(kind, (Part(poly, fill, hole=hole),), blur_length=length, blur_angle=direction)


def _phone_or_cup(rng: Rng, kind: str) -> Occluder:
    cx, cy = _spot(rng)
    angle = rng.uniform(-0.6, 0.6)
    col = any_colour(rng, dark=kind == "phone")
    if kind == "phone":
        body = rounded_rect(cx, cy, rng.uniform(0.7, 0.9), rng.uniform(1.4, 1.8), 0.12, angle)
        screen = rounded_rect(cx, cy, 0.6, 1.2, 0.05, angle)
        parts = [Part(body, _fill(rng, col, texture=False)), Part(screen, _fill(rng, any_colour(rng), texture=True))]
    else:
        body = rounded_rect(cx, cy, rng.uniform(0.8, 1.1), rng.uniform(1.0, 1.3), 0.08, angle)
        handle = ellipse(cx + 0.65, cy, 0.3, 0.35, angle)
        hole = ellipse(cx + 0.65, cy, 0.17, 0.22, angle)
        fill = _fill(rng, col, texture=False)
        parts = [Part(handle, fill, hole=hole), Part(body, fill)]
    return Occluder(kind, tuple(parts))


def _eyewear(rng: Rng, kind: str) -> Occluder:
    t = rng.uniform(0.03, 0.08) if kind != "aviator" else rng.uniform(0.02, 0.035)
    frame_col = any_colour(rng, dark=rng.random() < 0.7)
    frame = Fill(frame_col, (float(rng.normal(0, 0.2)), 0.0))
    dark = kind in ("sunglasses", "aviator")
    lens_fill = Fill(any_colour(rng, dark=True) if dark else (0.8, 0.85, 0.9), (0.0, float(rng.uniform(-0.6, 0.2))))
    lens_label: Label = "glasses" if dark else "clear"
    lens_opacity = float(rng.uniform(0.85, 1.0)) if dark else float(rng.uniform(0.03, 0.2))
    ax, ay = rng.uniform(0.3, 0.4), rng.uniform(0.2, 0.3)
    y = float(rng.uniform(-0.05, 0.08))
    style = rng.integers(3)
    parts: list[Part] = []
    for side in (-1, 1):
        cx = 0.5 * side
        if kind == "aviator":
            inner = np.concatenate([ellipse(cx, y, ax, ay * 1.1, n=36)[18:],
                                    ellipse(cx + side * 0.05, y + 0.05, ax * 1.05, ay * 1.5, n=36)[:19]])
        elif style == 0:
            inner = ellipse(cx, y, ax, ay)
        elif style == 1:
            inner = rounded_rect(cx, y, 2 * ax, 2 * ay, 0.08)
        else:
            inner = rounded_rect(cx, y, 2 * ax, 2 * ay, 0.15)
            inner[:, 1] += np.where(inner[:, 1] > y, -(inner[:, 0] - cx) * side * 0.15, 0.0)
        centre = inner.mean(0)
        outer = centre + (inner - centre) * (1 + t / min(ax, ay))
        parts.append(Part(inner, lens_fill, lens_label, opacity=lens_opacity))
        parts.append(Part(outer, frame, "glasses", hole=inner))
        edge = cx + side * ax
        parts.append(Part(capsule((edge, y - 0.05), (side * rng.uniform(1.15, 1.4), y - 0.02), t / 2), frame,
                          "glasses"))
        if dark and rng.random() < 0.6:  # a highlight on the lens
            parts.append(Part(ellipse(cx - 0.1, y - 0.08, ax * 0.35, ay * 0.15, 0.3), Fill((1.0, 1.0, 1.0)),
                              "glasses", opacity=float(rng.uniform(0.1, 0.4))))
    parts.append(Part(capsule((-0.5 + ax * 0.9, y - 0.08), (0.5 - ax * 0.9, y - 0.08), t / 2), frame, "glasses"))
    if kind == "aviator":
        parts.append(Part(capsule((-0.5 + ax, y - ay), (0.5 - ax, y - ay), t / 2), frame, "glasses"))
    return Occluder(kind, tuple(parts))


def draw(rng: Rng, kind: str, *, skin: Sequence[float] | None = None,
         patches: Sequence[np.ndarray] = ()) -> Occluder:
    """One occluder of family ``kind`` (see :data:`TRAIN_KINDS`, :data:`HELD_OUT_KINDS`). ``skin``: the
    face's skin colour (RGB in [0, 1]) for hands; ``patches``: uint8 RGB face crops for ``face_patch``."""
    if kind in ("hand", "fist"):
        return _hand(rng, skin, kind == "fist")
    if kind in ("pen", "mic"):
        return _stick(rng, kind == "mic")
    if kind in EYEWEAR:
        return _eyewear(rng, kind)
    if kind in ("phone", "cup"):
        return _phone_or_cup(rng, kind)
    if kind in ("blob", "texture", "face_patch", "crescent", "rimmed_blob"):
        return _shape(rng, kind, skin, patches)
    raise ValueError(f"unknown occluder kind {kind!r}; known: {TRAIN_KINDS + HELD_OUT_KINDS}")


def draw_scene(rng: Rng, split: Split = "train", *, skin: Sequence[float] | None = None,
               patches: Sequence[np.ndarray] = ()) -> list[Occluder]:
    """The occluders of one training or evaluation sample: maybe eyewear, then 0-2 other things on top."""
    kinds = TRAIN_KINDS if split == "train" else HELD_OUT_KINDS
    eyewear = [k for k in kinds if k in EYEWEAR]
    others = [k for k in kinds if k not in EYEWEAR and (k != "face_patch" or patches)]
    weights = np.array([KIND_WEIGHTS.get(k, 1.0) for k in others])
    out = [draw(rng, str(rng.choice(eyewear)))] if rng.random() < P_EYEWEAR else []
    for _ in range(int(rng.choice(len(OCCLUDER_COUNTS), p=OCCLUDER_COUNTS))):
        out.append(draw(rng, str(rng.choice(others, p=weights / weights.sum())), skin=skin, patches=patches))
    return out
