"""Training data for the detector: real face crops, and the fakes made from them on the fly.

A :class:`FaceSet` holds real crops (RGB uint8 ``(N, S, S, 3)``, aligned ``whole`` faces), their
landmarks in crop pixels ``(N, 68, 2)`` and who each face belongs to. :func:`make_batch` turns a random
draw of them into a training batch: reals, self-blended fakes (:mod:`doppel.detect.sbi`) and fakes made
with merge's stages from another person's face (:mod:`doppel.detect.variants`), then the same
re-encoding, rescaling, blur and flips for every image, real or not (so none of those is a cue).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import cv2
import numpy as np

from doppel.detect.faces import FaceFinder, crop_face
from doppel.detect.sbi import boundary, draw_params, self_blend
from doppel.detect.variants import align_donor, draw_merge_params, merge_fake
from doppel.io.image import decode_image, encode_image
from doppel.ops.align import FaceType
from doppel.ops.face import hull_mask


@dataclass
class FaceSet:
    crops: np.ndarray          # uint8 (N, S, S, 3)
    landmarks: np.ndarray      # float32 (N, 68, 2), crop pixels
    people: np.ndarray         # str (N,): who each face is (fakes made from others take a different person)
    clips: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))  # str (N,): the source clip
    frames: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # (N,): frame index in it
    swaps: np.ndarray = field(default_factory=lambda: np.zeros((0, 1, 1, 3), dtype=np.uint8))
    """uint8 (N, S, S, 3) or empty: the same frame with its face replaced by a doppel swap, cut with the same
    landmarks (a fake that differs from its real crop only by the swap); all zero where there is none."""

    def __post_init__(self) -> None:
        n = len(self.crops)
        if self.crops.ndim != 4 or self.crops.shape[3] != 3 or self.crops.dtype != np.uint8:
            raise ValueError(f"expected crops uint8 (N, S, S, 3), got {self.crops.shape} {self.crops.dtype}")
        if self.landmarks.shape != (n, 68, 2) or len(self.people) != n:
            raise ValueError(f"{n} crops need (N, 68, 2) landmarks and N people, got {self.landmarks.shape} "
                             f"and {len(self.people)}")
        if len(self.clips) != n:
            self.clips = np.array([""] * n, dtype=object)
        if len(self.frames) != n:
            self.frames = np.full(n, -1, dtype=np.int64)
        if len(self.swaps) != n or self.swaps.shape[1:] != self.crops.shape[1:]:
            self.swaps = np.zeros((0, *self.crops.shape[1:]), dtype=np.uint8)

    @property
    def has_swap(self) -> np.ndarray:
        """bool (N,): which faces have a swapped twin in ``swaps``."""
        if not len(self.swaps):
            return np.zeros(len(self.crops), bool)
        return np.asarray(self.swaps.reshape(len(self.swaps), -1).any(axis=1))

    def __len__(self) -> int:
        return len(self.crops)

    @staticmethod
    def concat(sets: Iterable[FaceSet]) -> FaceSet:
        sets = [s for s in sets if len(s)]
        if not sets:
            raise ValueError("no faces to train on")
        swaps = (np.concatenate([s.swaps if len(s.swaps) else np.zeros_like(s.crops) for s in sets])
                 if any(len(s.swaps) for s in sets) else np.zeros((0, 1, 1, 3), np.uint8))
        return FaceSet(np.concatenate([s.crops for s in sets]), np.concatenate([s.landmarks for s in sets]),
                       np.concatenate([s.people for s in sets]), np.concatenate([s.clips for s in sets]),
                       np.concatenate([s.frames for s in sets]), swaps)

    def subset(self, keep: np.ndarray) -> FaceSet:
        """The faces where ``keep`` (a boolean mask or indices) says so."""
        swaps = self.swaps[keep] if len(self.swaps) else self.swaps
        return FaceSet(self.crops[keep], self.landmarks[keep], self.people[keep], self.clips[keep], self.frames[keep],
                       swaps)


def collect(frames: Iterable[tuple[int, np.ndarray]], person: str, *, size: int, face_type: FaceType = "whole",
            clip: str = "", consecutive: bool = False) -> FaceSet:
    """The faces found in ``frames`` (``(index, RGB uint8 frame)``) as crops of ``person``.

    ``consecutive``: the frames follow each other (the tracker re-detects less often); else every frame
    is searched whole.
    """
    finder = FaceFinder(detect_every=5 if consecutive else 1)
    crops, marks, where = [], [], []
    for index, frame in frames:
        for face in finder.step(index, frame):
            crop, _, lm = crop_face(frame, face.landmarks, size, face_type)
            crops.append(crop)
            marks.append(lm)
            where.append(index)
    n = len(crops)
    return FaceSet(np.array(crops, dtype=np.uint8).reshape(n, size, size, 3),
                   np.array(marks, dtype=np.float32).reshape(n, 68, 2), np.array([person] * n, dtype=object),
                   np.array([clip] * n, dtype=object), np.array(where, dtype=np.int64))


@dataclass(frozen=True)
class Mix:
    """What a batch is made of: the share of reals, and of fakes the share made by self-blending (the rest
    by merge's stages from another person's face)."""

    real: float = 0.5
    sbi: float = 0.6
    paired: bool = False
    """Each face drawn comes twice, real and made fake (as the SBI paper trains): who a face belongs to,
    the camera and the light are then on both sides of every comparison and cannot tell real from fake.
    ``real`` is then 0.5 by construction."""
    swap: float = 0.0
    """The share of fakes taken from a face's doppel-swapped twin (:attr:`FaceSet.swaps`) where it has one."""
    camera: bool = False
    """Put every image (real or fake) through a random camera and delivery chain (:func:`camera_chain`)
    instead of :func:`degrade`'s light one: six clips are six cameras, and a network that has seen only
    those calls every other camera's grain fake."""


def jitter(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Whole-image changes that make no blend (so a real stays real), applied to reals and fakes alike: a small
    shift, scale and rotation, brightness, contrast and saturation."""
    s = image.shape[0]
    m = cv2.getRotationMatrix2D((s / 2, s / 2), float(rng.uniform(-6, 6)), float(rng.uniform(0.93, 1.07)))
    m[:, 2] += rng.uniform(-0.04, 0.04, 2) * s
    out = cv2.warpAffine(image, m, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    mask = cv2.warpAffine(mask, m, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    x = out.astype(np.float32)
    grey = x.mean(axis=2, keepdims=True)
    x = grey + (x - grey) * rng.uniform(0.7, 1.3)
    x = (x - 128.0) * rng.uniform(0.8, 1.2) + 128.0 + rng.uniform(-20, 20)
    return np.clip(x + 0.5, 0, 255).astype(np.uint8), mask


def degrade(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What happens to a clip on its way out, applied to reals and fakes alike: rescaling, blur, JPEG
    (standing in for H.264 intra coding), noise."""
    s = image.shape[0]
    out = image
    if rng.random() < 0.4:
        small = max(24, round(s * rng.uniform(0.35, 0.9)))
        out = cv2.resize(cv2.resize(out, (small, small), interpolation=cv2.INTER_AREA), (s, s),
                         interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.15:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.4, 1.2))
    if rng.random() < 0.6:
        out = decode_image(encode_image(out, ".jpg", jpeg_quality=int(rng.integers(35, 96))))
    if rng.random() < 0.2:
        noise = rng.normal(0, rng.uniform(1, 4), out.shape)
        out = np.clip(out.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    return out


def camera_chain(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random camera and delivery chain, the same for a real face and a fake: sensor-like noise, denoising,
    in-camera sharpening, rescaling with one of several filters, gamma, JPEG. Each step is drawn alone, so
    the chains vary from untouched to heavily processed."""
    s = image.shape[0]
    x: np.ndarray = image.astype(np.float32)
    if rng.random() < 0.3:
        sigma = rng.uniform(1, 6)
        grain = rng.normal(0, sigma, (*x.shape[:2], 1)) if rng.random() < 0.5 else rng.normal(0, sigma, x.shape)
        x = x + grain
    if rng.random() < 0.25:
        x = cv2.bilateralFilter(np.clip(x, 0, 255).astype(np.float32), 5, float(rng.uniform(10, 40)),
                                float(rng.uniform(2, 6)))
    if rng.random() < 0.4:
        sigma = rng.uniform(0.6, 2.0)
        x = x + rng.uniform(0.3, 1.5) * (x - cv2.GaussianBlur(x, (0, 0), sigma))
    if rng.random() < 0.5:
        small = max(24, round(s * rng.uniform(0.3, 0.95)))
        down, up = (cv2.INTER_AREA, cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_LANCZOS4), (
            cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_LANCZOS4)
        x = cv2.resize(x, (small, small), interpolation=down[int(rng.integers(len(down)))])
        x = cv2.resize(x, (s, s), interpolation=up[int(rng.integers(len(up)))])
    if rng.random() < 0.15:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.4, 1.2))
    if rng.random() < 0.3:
        x = 255.0 * (np.clip(x, 0, 255) / 255.0) ** rng.uniform(0.75, 1.33)
    out = np.clip(x + 0.5, 0, 255).astype(np.uint8)
    if rng.random() < 0.7:
        out = decode_image(encode_image(out, ".jpg", jpeg_quality=int(rng.integers(30, 96))))
    return out


def make_item(faces: FaceSet, i: int, rng: np.random.Generator, mix: Mix, *, fake: bool | None = None
              ) -> tuple[np.ndarray, float, np.ndarray]:
    """One training image from face ``i``: (crop uint8, label 0 real / 1 fake, blend mask float32). ``fake``
    decides which; None draws it with ``mix.real``."""
    crop, lm = faces.crops[i], faces.landmarks[i]
    size = crop.shape[0]
    real = not fake if fake is not None else bool(rng.random() < mix.real)
    if real:
        image, label, mask = crop, 0.0, np.zeros((size, size), np.float32)
    else:
        others = np.flatnonzero(faces.people != faces.people[i])
        if mix.swap > 0 and len(faces.swaps) and faces.swaps[i].any() and rng.random() < mix.swap:
            # merge's own matte is not kept with the crop: the landmark hull, feathered, stands in for the
            # boundary target
            image = faces.swaps[i]
            mask = cv2.GaussianBlur(hull_mask(lm, size, "face"), (0, 0), max(1.0, 0.02 * size)).astype(np.float32)
        elif rng.random() < mix.sbi or not len(others):
            image, mask = self_blend(crop, lm, draw_params(rng))
        else:
            j = int(rng.choice(others))
            donor = align_donor(faces.crops[j], faces.landmarks[j], lm)
            image, mask = merge_fake(crop, lm, donor, draw_merge_params(rng))
        label = 1.0
    if rng.random() < 0.5:
        image, mask = image[:, ::-1], mask[:, ::-1]
    image, mask = jitter(np.ascontiguousarray(image), np.ascontiguousarray(mask), rng)
    return (camera_chain(image, rng) if mix.camera else degrade(image, rng)), label, mask


def make_batch(faces: FaceSet, indices: np.ndarray, rng: np.random.Generator, mix: Mix, *, size: int,
               masks: list[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(images float32 (N, 3, size, size) in [0, 1], labels float32 (N,), boundary float32 (N, 1, size/4,
    size/4))`` for faces ``indices`` (``mix.paired``: each face real then fake, so N is twice as many).
    ``masks``: a list that receives each image's blend mask (float32 ``(size, size)``, 0 for a real)."""
    images, labels, bounds = [], [], []
    draws = [(int(i), k) for i in indices for k in (False, True)] if mix.paired else [(int(i), None) for i in indices]
    for i, fake in draws:
        image, label, mask = make_item(faces, i, rng, mix, fake=fake)
        if image.shape[0] != size:
            image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
        if masks is not None:
            masks.append(mask if mask.shape[0] == size
                         else cv2.resize(mask, (size, size), interpolation=cv2.INTER_AREA))
        small = cv2.resize(mask, (size // 4, size // 4), interpolation=cv2.INTER_AREA)
        images.append(image)
        labels.append(label)
        bounds.append(boundary(small))
    x = np.stack(images).astype(np.float32).transpose(0, 3, 1, 2) / 255.0
    return x, np.asarray(labels, np.float32), np.stack(bounds)[:, None]
