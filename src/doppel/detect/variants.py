"""Fakes made with merge's own stages: another face put into a real one the way ``doppel merge`` does it.

The replacement face (another person's face warped onto the target's landmarks, or a swapper's output)
is softened like an autoencoder's render, colour-matched with one of merge's colour transfers
(:data:`doppel.merge.colour.COLOUR_TRANSFERS`), cut with merge's matte (:func:`doppel.merge.masks.face_matte`)
and blended with one of merge's blends (:data:`doppel.merge.blend.BLENDS`). Training varies every one of
these; the detection benchmark builds its fakes per colour and blend mode with the same function.

Crops are RGB uint8 ``(S, S, 3)``, landmarks float ``(68, 2)`` in crop pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import get_args

import cv2
import numpy as np

from doppel.merge.blend import BLENDS, BlendMode
from doppel.merge.colour import COLOUR_TRANSFERS, ColourMode
from doppel.merge.masks import face_matte
from doppel.merge.settings import MergeSettings
from doppel.ops.align import umeyama
from doppel.ops.face import hull_mask

COLOURS: tuple[ColourMode, ...] = get_args(ColourMode)
BLEND_MODES: tuple[BlendMode, ...] = get_args(BlendMode)


@dataclass(frozen=True)
class MergeFakeParams:
    colour: ColourMode
    blend: BlendMode
    erode: int          # merge's mask_erode (px at 256)
    blur: int           # merge's mask_blur (px at 256)
    render: float       # the face's resolution as a fraction of the crop (1 = as sharp as the plate)


def draw_merge_params(rng: np.random.Generator) -> MergeFakeParams:
    """Random merge settings around doppel's defaults (rct, alpha, erode 8, blur 16)."""
    return MergeFakeParams(colour=COLOURS[int(rng.integers(len(COLOURS)))],
                           blend=BLEND_MODES[int(rng.random() < 0.3)],
                           erode=int(rng.integers(-4, 20)), blur=int(rng.integers(4, 40)),
                           render=float(rng.choice([1.0, rng.uniform(0.35, 0.9)], p=[0.3, 0.7])))


def align_donor(donor: np.ndarray, donor_lm: np.ndarray, target_lm: np.ndarray) -> np.ndarray:
    """The donor crop warped so its 68 landmarks fit the target's (similarity, least squares)."""
    m = umeyama(np.asarray(donor_lm, np.float64)[:68], np.asarray(target_lm, np.float64)[:68])
    s = donor.shape[0]
    return cv2.warpAffine(donor, m, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def merge_fake(target: np.ndarray, target_lm: np.ndarray, face: np.ndarray, p: MergeFakeParams
               ) -> tuple[np.ndarray, np.ndarray]:
    """``face`` (aligned to ``target``) merged into ``target`` as doppel merges a swap: the fake crop uint8
    ``(S, S, 3)`` and the matte float32 ``(S, S)``."""
    if target.shape != face.shape or target.dtype != np.uint8 or face.dtype != np.uint8:
        raise ValueError(f"target {target.shape} {target.dtype} and face {face.shape} {face.dtype} must be "
                         "uint8 crops of one size")
    size = target.shape[0]
    swapped: np.ndarray = face.astype(np.float32) / 255.0
    if p.render < 1.0:
        small = max(16, round(size * p.render))
        swapped = cv2.resize(cv2.resize(swapped, (small, small), interpolation=cv2.INTER_AREA), (size, size),
                             interpolation=cv2.INTER_CUBIC)
        swapped = np.clip(swapped, 0.0, 1.0)
    plate = target.astype(np.float32) / 255.0
    hull = hull_mask(target_lm, size, "face")
    transfer = COLOUR_TRANSFERS.create(p.colour)
    swapped = transfer.apply(swapped, transfer.fit(swapped, plate, hull, hull))
    settings = MergeSettings(mask_mode="hull", mask_erode=p.erode, mask_blur=p.blur, colour=p.colour, blend=p.blend)
    matte = face_matte(target_lm, None, size, settings, hull=hull)
    face8 = np.clip(swapped * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return BLENDS.create(p.blend).blend(target, face8, matte), matte.astype(np.float32)
