"""Training samples for the segmenter: clean face crops with their labels, and batches made from them
with synthetic occluders, a random warp and colour changes (each drawn, then applied to the image,
its labels and its weights alike).

A :class:`Sample` is one aligned crop in the segmenter's framing (uint8 ``(S, S, 3)`` RGB) with its
landmarks, its visible-face and glasses labels and their per-pixel weights (0 = unknown).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np

from doppel.segment import synth
from doppel.segment.labels import Polygon, eye_band, face_label, skin_sample, with_polygons
from doppel.segment.paint import paint

P_CLEAN_POLYGON = 0.5  # chance that an artist-labelled sample gets no synthetic occluder
GLASSES_BAND_WEIGHT = 0.3  # real glasses the label cannot see: their band counts as face, weakly
# (clear lenses are face seen through; the thin frames are what this soft label gets wrong)


@dataclass
class Sample:
    image: np.ndarray  # uint8 (S, S, 3) RGB
    landmarks: np.ndarray  # (68, 2) crop pixels
    face: np.ndarray  # float32 (S, S) visible face (no occluders drawn yet)
    glasses: np.ndarray  # float32 (S, S)
    face_weight: np.ndarray  # float32 (S, S)
    glasses_weight: np.ndarray  # float32 (S, S)
    skin: tuple[float, float, float]  # mean skin colour, RGB in [0, 1] (for hand-like occluders)
    labelled: bool = False  # carries an artist's polygons


def make_sample(image: np.ndarray, landmarks: np.ndarray, *, glasses_unknown: bool = False,
                polygons: Sequence[Polygon] = ()) -> Sample:
    """A sample from a segmenter-framed crop (uint8 RGB) and its landmarks. ``glasses_unknown``: the
    person wears glasses the automatic label cannot see: the eye band's face label weighs only
    :data:`GLASSES_BAND_WEIGHT` and its glasses label is unknown."""
    size = image.shape[0]
    face = face_label(image, landmarks)
    glasses = np.zeros_like(face)
    w_face = np.ones_like(face)
    w_glasses = np.ones_like(face)
    if glasses_unknown:
        band = eye_band(landmarks, size)
        w_face[band] = GLASSES_BAND_WEIGHT
        w_glasses[band] = 0.0
    if polygons:
        face, glasses, w_face, w_glasses = with_polygons(face, glasses, w_face, w_glasses, polygons)
    sample = skin_sample(landmarks, size)
    skin = image[sample].mean(0) / 255.0 if sample.any() else np.array([0.7, 0.55, 0.45])
    return Sample(image, np.asarray(landmarks, np.float64), face, glasses, w_face, w_glasses,
                  (float(skin[0]), float(skin[1]), float(skin[2])), labelled=bool(polygons))


def with_prior(sample: Sample, face: np.ndarray, glasses: np.ndarray, sure: float) -> Sample:
    """``sample`` with its automatic labels replaced by a segmenter's soft ones (``face``, ``glasses``: float
    ``(S, S)`` in [0, 1]) wherever, inside the landmark hull, that segmenter is less than ``sure`` that it
    sees face, or more than ``1 - sure`` that it sees glasses; those pixels then count fully."""
    doubt = (sample.face > 0.5) & ((face < sure) | (glasses > 1.0 - sure))
    return replace(sample, face=np.where(doubt, face, sample.face), glasses=np.where(doubt, glasses, sample.glasses),
                   face_weight=np.where(doubt, 1.0, sample.face_weight).astype(np.float32),
                   glasses_weight=np.where(doubt, 1.0, sample.glasses_weight).astype(np.float32))


# -- augmentation: draw, then apply --------------------------------------------------------------
@dataclass(frozen=True)
class Jitter:
    """A random similarity warp (about the crop centre) and a colour change."""

    angle: float  # degrees
    scale: float
    shift: tuple[float, float]  # fraction of the crop
    gain: tuple[float, float, float]
    contrast: float
    saturation: float
    noise: float
    blur: float
    flip: bool


def draw_jitter(rng: np.random.Generator, strength: float = 1.0) -> Jitter:
    s = strength
    return Jitter(angle=float(rng.normal(0, 8 * s)), scale=float(np.exp(rng.normal(0, 0.1 * s))),
                  shift=(float(rng.normal(0, 0.04 * s)), float(rng.normal(0, 0.04 * s))),
                  gain=tuple(float(g) for g in np.exp(rng.normal(0, 0.12 * s, 3))),  # type: ignore[arg-type]
                  contrast=float(np.exp(rng.normal(0, 0.15 * s))), saturation=float(np.exp(rng.normal(0, 0.25 * s))),
                  noise=float(abs(rng.normal(0, 0.015 * s))), blur=float(max(0.0, rng.normal(0, 0.5 * s))),
                  flip=bool(rng.random() < 0.5))


def warp_matrix(j: Jitter, size: int) -> np.ndarray:
    c = size / 2.0
    m = cv2.getRotationMatrix2D((c, c), j.angle, j.scale)
    m[:, 2] += np.array(j.shift) * size
    if j.flip:
        m = np.array([[-1.0, 0, size - 1], [0, 1, 0]]) @ np.vstack([m, [0, 0, 1]])
    return m


def warp(array: np.ndarray, matrix: np.ndarray, *, border: str = "replicate") -> np.ndarray:
    size = array.shape[0]
    mode = cv2.BORDER_REPLICATE if border == "replicate" else cv2.BORDER_CONSTANT
    return cv2.warpAffine(array, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=mode, borderValue=0)


def recolour(image: np.ndarray, j: Jitter, rng: np.random.Generator) -> np.ndarray:
    """``image`` float32 RGB [0, 1] with the jitter's colour change, blur and noise applied."""
    out = image * np.asarray(j.gain, np.float32)
    mean = out.mean()
    out = (out - mean) * j.contrast + mean
    grey = out.mean(2, keepdims=True)
    out = grey + (out - grey) * j.saturation
    if j.blur > 0.3:
        out = cv2.GaussianBlur(out, (0, 0), j.blur)
    if j.noise > 0:
        out = out + rng.normal(0, j.noise, out.shape).astype(np.float32)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


@dataclass
class Batch:
    images: np.ndarray  # float32 (N, 3, S, S) RGB [0, 1]
    targets: np.ndarray  # float32 (N, 2, S, S): visible face, glasses
    weights: np.ndarray  # float32 (N, 2, S, S)


def augmented(sample: Sample, rng: np.random.Generator, *, split: synth.Split = "train",
              patches: Sequence[np.ndarray] = (), occlude: bool = True,
              strength: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """One augmented view: image float32 ``(S, S, 3)``, targets and weights ``(2, S, S)``, and the share
    of the visible face that the drawn occluders (glasses included) cover."""
    img = sample.image.astype(np.float32) / 255.0
    face, glasses = sample.face, sample.glasses
    w_face, w_glasses = sample.face_weight, sample.glasses_weight
    covered = 0.0
    if occlude:
        scene = synth.draw_scene(rng, split, skin=sample.skin, patches=patches)
        if scene:
            painted = paint(img, sample.landmarks, scene)
            img = painted.image
            cover = np.clip(painted.occluder + painted.glasses, 0.0, 1.0)
            covered = float((face * cover).sum()) / max(float(face.sum()), 1.0)
            face = face * (1.0 - cover)
            glasses = np.maximum(glasses * (1.0 - cover), painted.glasses)
            known = cover > 0.5  # what was drawn is known exactly, even in an unknown eye band
            w_face = np.where(known, np.maximum(w_face, 1.0), w_face)
            w_glasses = np.where(known, np.maximum(w_glasses, 1.0), w_glasses)
    j = draw_jitter(rng, strength)
    m = warp_matrix(j, img.shape[0])
    img = recolour(warp(img, m), j, rng)
    targets = np.stack([warp(face, m, border="constant"), warp(glasses, m, border="constant")])
    weights = np.stack([warp(w_face, m), warp(w_glasses, m)])
    return img, targets, weights, covered


def make_batch(samples: Sequence[Sample], rng: np.random.Generator, n: int, *, split: synth.Split = "train",
               patches: Sequence[np.ndarray] = (), labelled_share: float = 0.0) -> Batch:
    """``n`` augmented views; ``labelled_share`` of them (at least) from artist-labelled samples."""
    labelled = [s for s in samples if s.labelled]
    imgs, tgts, wts = [], [], []
    for k in range(n):
        pool = labelled if labelled and k < round(labelled_share * n) else samples
        s = pool[int(rng.integers(len(pool)))]
        occlude = not (s.labelled and rng.random() < P_CLEAN_POLYGON)
        img, t, w, _ = augmented(s, rng, split=split, patches=patches, occlude=occlude,
                              strength=0.5 if s.labelled else 1.0)
        imgs.append(img.transpose(2, 0, 1))
        tgts.append(t)
        wts.append(w)
    return Batch(np.stack(imgs).astype(np.float32), np.stack(tgts).astype(np.float32), np.stack(wts).astype(np.float32))
