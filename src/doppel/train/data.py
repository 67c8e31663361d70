"""Training data: aligned faces of each identity, held in memory, sampled and augmented per step.

:func:`load_faceset` reads an identity's aligned crops (RGB uint8, resized to the model's
resolution) and their landmarks in crop pixels. :class:`PairDataset` is indexed by *training
step*: batch ``k`` depends only on ``(seed, k, rank)``, so a resumed run sees exactly the batches
a straight run would, however many loader worker processes there are.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from doppel.core.errors import ConfigError, InputError, NoFaceError
from doppel.io.image import read_image
from doppel.ops import face
from doppel.store.records import FaceRecord
from doppel.train import augment

log = logging.getLogger(__name__)

# The loss covers more forehead than merge pastes (doppel.ops.face.FOREHEAD_LIFT = 0.12): brows
# raised by a third of the brow-to-chin distance, as training has always used.
TRAIN_FOREHEAD_LIFT = 1 / 3


@dataclass(frozen=True)
class FaceSet:
    """``images`` uint8 ``(N, R, R, 3)`` RGB; ``landmarks`` float32 ``(N, 68, 2)`` crop pixels."""

    names: tuple[str, ...]
    images: np.ndarray
    landmarks: np.ndarray
    face_ids: np.ndarray

    def __len__(self) -> int:
        return len(self.images)

    def split(self, holdout: float, seed: int = 0) -> tuple[FaceSet, FaceSet]:
        """A (train, held-out) split. Held-out faces come in contiguous runs of frames (>= 12 each,
        spread over the set): single frames held out between training neighbours would be near copies
        of them and flatter the held-out score."""
        n = len(self)
        if not 0 < holdout < 1 or n < 2:
            return self, self
        total = max(1, round(n * holdout))
        blocks = max(1, total // 12)
        size = max(1, total // blocks)
        offset = int(np.random.default_rng(seed).integers(0, max(1, n // blocks - size + 1)))
        held = np.zeros(n, dtype=bool)
        for b in range(blocks):
            start = b * (n // blocks) + offset
            held[start:start + size] = True
        if held.all():
            held[-1] = False
        return self._take(~held), self._take(held)

    def _take(self, keep: np.ndarray) -> FaceSet:
        return FaceSet(self.names, self.images[keep], self.landmarks[keep], self.face_ids[keep])


def load_faceset(faces: Mapping[str, list[FaceRecord]], resolution: int, face_type: str) -> FaceSet:
    """The crops of ``faces`` (identity name -> its faces in use) whose crop has ``face_type``, resized to
    ``resolution``.

    Raises ``NoFaceError`` when an identity has none usable, ``InputError`` for a missing or unreadable crop.
    """
    names = list(faces)
    images, lms, ids = [], [], []
    for name, records in faces.items():
        usable = [r for r in records if r.face_type == face_type]
        if records and not usable:
            raise ConfigError(f"identity {name!r} has {len(records)} faces of type "
                              f"{records[0].face_type!r}, none of type {face_type!r}; "
                              "re-extract or choose a matching --face-type")
        if not usable:
            raise NoFaceError(f"identity {name!r} has no faces; extract some first "
                              "(`doppel extract`) or un-exclude pruned ones")
        for r in usable:
            try:
                rgb = read_image(r.aligned_path)
            except InputError:
                raise InputError("aligned face is missing or unreadable; re-extract this identity",
                                 path=r.aligned_path) from None
            lm = r.aligned_landmarks()[:68]
            if rgb.shape[0] != resolution:
                lm = lm * (resolution / rgb.shape[0])
                rgb = cv2.resize(rgb, (resolution, resolution), interpolation=cv2.INTER_AREA
                                 if rgb.shape[0] > resolution else cv2.INTER_CUBIC)
            images.append(rgb)
            lms.append(lm.astype(np.float32))
            ids.append(r.id)
    log.info("loaded %d faces of %s at %d px", len(images), ", ".join(names), resolution)
    return FaceSet(tuple(names), np.stack(images), np.stack(lms), np.asarray(ids, dtype=np.int64))


def _u8(mask: np.ndarray) -> np.ndarray:
    return np.rint(mask * 255.0).astype(np.uint8)


def face_hull_mask(landmarks: np.ndarray, size: int) -> np.ndarray:
    """uint8 ``(S, S)`` 0/255: the face hull that the loss covers (:func:`doppel.ops.face.hull_mask`),
    forehead raised by :data:`TRAIN_FOREHEAD_LIFT`."""
    return _u8(face.hull_mask(landmarks, size, "face", lift=TRAIN_FOREHEAD_LIFT))


def eyes_mouth_mask(landmarks: np.ndarray, size: int) -> np.ndarray:
    """uint8 ``(S, S)`` 0/255: the eyes and mouth, where the loss weighs more
    (:func:`doppel.ops.face.features_mask`)."""
    return _u8(face.features_mask(landmarks, size))


class PairDataset(Dataset[dict[str, torch.Tensor]]):
    """Item ``k`` is the whole batch of step ``k``: for each side (``src``, ``dst``) uint8 tensors
    ``{side}_in`` (warped input) and ``{side}_target`` ``(B, R, R, 3)``, ``{side}_mask`` (face
    hull) and ``{side}_em`` (eyes and mouth) ``(B, R, R)``."""

    def __init__(self, src: FaceSet, dst: FaceSet, *, batch: int, seed: int, rank: int = 0,
                 settings: augment.AugmentSettings = augment.AugmentSettings()) -> None:
        self.sides = {"src": src, "dst": dst}
        self.batch, self.seed, self.rank, self.settings = batch, seed, rank, settings

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, int(step), self.rank])
        out: dict[str, torch.Tensor] = {}
        for side, fs in self.sides.items():
            idx = rng.integers(0, len(fs), self.batch)
            parts: dict[str, list[np.ndarray]] = {"in": [], "target": [], "mask": [], "em": []}
            for i in idx:
                p = augment.draw(rng, fs.images.shape[1], self.settings)
                img = fs.images[i]
                parts["in"].append(augment.apply_image(img, p, warp=True))
                parts["target"].append(augment.apply_image(img, p, warp=False))
                lm = augment.apply_points(fs.landmarks[i], p, warp=False)
                parts["mask"].append(face_hull_mask(lm, p.size))
                parts["em"].append(eyes_mouth_mask(lm, p.size))
            for key, arrays in parts.items():
                out[f"{side}_{key}"] = torch.from_numpy(np.stack(arrays))
        return out


def _ignore_sigint(_worker_id: int) -> None:
    """Loader workers leave Ctrl-C to the main process, which checkpoints and stops them."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def make_loader(dataset: PairDataset, start_step: int, stop_step: int, workers: int) -> DataLoader:
    """Batches for steps ``start_step .. stop_step - 1`` in order, built by ``workers`` processes."""
    return DataLoader(dataset, batch_size=None, sampler=range(start_step, stop_step), num_workers=workers,
                      prefetch_factor=2 if workers else None, persistent_workers=False,
                      generator=torch.Generator().manual_seed(dataset.seed),
                      worker_init_fn=_ignore_sigint if workers else None)  # leaves the global RNG alone


def to_model(batch: dict[str, torch.Tensor], device: torch.device, channels_last: bool) -> dict[str, torch.Tensor]:
    """uint8 NHWC -> float32 NCHW in [0, 1] on ``device`` (images ``(B,3,R,R)``, masks ``(B,1,R,R)``)."""
    out = {}
    for key, t in batch.items():
        t = t.to(device, non_blocking=True)
        t = t.unsqueeze(-1) if t.ndim == 3 else t
        x = t.permute(0, 3, 1, 2).float().div_(255.0)
        out[key] = x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    return out
