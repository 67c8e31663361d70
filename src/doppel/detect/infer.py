"""Scoring a clip: faces found frame by frame, each face scored, the clip scored from its worst frames.

1. ``faces``: extract's detector, tracker and landmarks (:class:`doppel.detect.faces.FaceFinder`) on up to
   ``max_frames`` frames spread over the clip.
2. ``score``: every face's aligned crop through the network, in batches; a frame's score is its most
   suspicious face's probability.
3. ``clip``: the clip's score is the mean of its top ``TOP_SHARE`` frame scores (at least one frame): a
   swap is in most frames, while a real face's odd frame (a blur, a hand) does not decide a clip alone.
4. ``heatmap`` (on request): the boundary head's map for the frames that drive the decision, put back in
   the frame.

The watermark is not an input here (``doppel verify`` reads it; the CLI shows both side by side).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from doppel.core.progress import ProgressFn, no_progress
from doppel.detect.calibrate import Calibration, load_calibration
from doppel.detect.faces import FaceFinder, crop_face
from doppel.detect.model import WEIGHTS_DIR, FaceForensicsNet, load
from doppel.ops.align import FaceType, warp_to_frame

TOP_SHARE = 0.3
"""The share of a clip's frames (the highest-scoring) whose mean is the clip's score."""
MAX_FRAMES = 64
"""Frames read from a clip, spread evenly over it."""
BATCH = 32


@dataclass
class FaceScore:
    box: tuple[float, float, float, float]
    score: float


@dataclass
class FrameScore:
    index: int
    score: float                   # the most suspicious face's probability (0 when no face was found)
    faces: list[FaceScore] = field(default_factory=list)


@dataclass
class ClipScore:
    clip_score: float              # in [0, 1]
    threshold: float
    fake: bool
    frames: list[FrameScore]
    top_frames: list[int]          # frame indices that decide the clip score, most suspicious first
    faces_found: int
    heatmaps: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def clip_score(frame_scores: Iterable[float], top_share: float = TOP_SHARE) -> float:
    """Mean of the top ``top_share`` of the frame scores (at least one); 0 for no frames."""
    s = sorted(frame_scores, reverse=True)
    if not s:
        return 0.0
    k = max(1, math.ceil(top_share * len(s)))
    return float(np.mean(s[:k]))


class Detector:
    """A detector network with its calibration: crops in, probabilities (and boundary maps) out."""

    def __init__(self, model: FaceForensicsNet, calibration: Calibration) -> None:
        self.model, self.calibration = model.eval(), calibration
        self.size = model.config.input_size
        self.face_type: FaceType = model.config.face_type

    @classmethod
    def load(cls, folder: Path | None = None) -> Detector:
        """The detector in ``folder`` (default: the one doppel ships) with its calibration."""
        path = Path(folder) if folder is not None else WEIGHTS_DIR
        return cls(load(path), load_calibration(path))

    def score_crops(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``crops`` uint8 ``(N, S, S, 3)`` -> probabilities ``(N,)`` and boundary maps float32 ``(N, S/4, S/4)``
        in [0, 1]."""
        if crops.ndim != 4 or crops.shape[1:] != (self.size, self.size, 3) or crops.dtype != np.uint8:
            raise ValueError(f"expected uint8 crops (N, {self.size}, {self.size}, 3), got {crops.shape} {crops.dtype}")
        probs, maps = [], []
        with torch.inference_mode():
            for i in range(0, len(crops), BATCH):
                x = torch.from_numpy(crops[i:i + BATCH]).permute(0, 3, 1, 2).float().div(255.0)
                out = self.model(x)
                probs.append(torch.sigmoid(out.logit).numpy())
                maps.append(torch.sigmoid(out.boundary[:, 0]).numpy())
        if not probs:
            return np.zeros(0, np.float32), np.zeros((0, self.size // 4, self.size // 4), np.float32)
        return np.concatenate(probs).astype(np.float32), np.concatenate(maps).astype(np.float32)

    def score_clip(self, frames: Iterable[tuple[int, np.ndarray]], *, consecutive: bool = False,
                   heatmap_frames: int = 0, progress: ProgressFn = no_progress, total: int | None = None
                   ) -> tuple[ClipScore, list[tuple[int, np.ndarray]]]:
        """Score ``(index, RGB uint8 frame)`` pairs. Returns the clip's score and, for the ``heatmap_frames``
        most suspicious frames, the frame with the boundary map drawn over it (RGB uint8)."""
        finder = FaceFinder(detect_every=5 if consecutive else 1)
        crops: list[np.ndarray] = []
        owners: list[tuple[int, int]] = []           # (position in `scored`, face number)
        scored: list[FrameScore] = []
        keep: dict[int, tuple[np.ndarray, list[np.ndarray]]] = {}   # frame index -> (frame, transforms)
        for n, (index, frame) in enumerate(frames):
            found = finder.step(index, frame)
            scored.append(FrameScore(index, 0.0, [FaceScore(f.box, 0.0) for f in found]))
            transforms = []
            for k, face in enumerate(found):
                crop, m, _ = crop_face(frame, face.landmarks, self.size, self.face_type)
                crops.append(crop)
                owners.append((len(scored) - 1, k))
                transforms.append(m)
            if heatmap_frames and found:
                keep[index] = (frame, transforms)
            progress(n + 1, total)
        probs, maps = self.score_crops(np.array(crops, dtype=np.uint8).reshape(-1, self.size, self.size, 3))
        per_face: dict[tuple[int, int], int] = {}
        for j, (pos, k) in enumerate(owners):
            scored[pos].faces[k].score = float(probs[j])
            scored[pos].score = max(scored[pos].score, float(probs[j]))
            per_face[(pos, k)] = j
        with_face = [f for f in scored if f.faces]
        value = clip_score([f.score for f in with_face])
        k = max(1, math.ceil(TOP_SHARE * len(with_face))) if with_face else 0
        top = sorted(with_face, key=lambda f: -f.score)[:k]
        threshold = self.calibration.threshold
        result = ClipScore(value, threshold, bool(with_face) and value >= threshold, scored,
                           [f.index for f in top], len(owners))
        overlays = []
        by_index = {f.index: pos for pos, f in enumerate(scored)}
        for f in top[:heatmap_frames]:
            frame, transforms = keep[f.index]
            pos = by_index[f.index]
            face_maps = [(maps[per_face[(pos, k)]], transforms[k]) for k in range(len(f.faces))]
            overlays.append((f.index, overlay(frame, face_maps)))
        return result, overlays


def overlay(frame: np.ndarray, face_maps: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """The frame (RGB uint8) darkened, with each face's boundary map (in [0, 1], crop space) put back through
    its frame -> crop transform and drawn in red-yellow where the evidence is."""
    h, w = frame.shape[:2]
    heat = np.zeros((h, w), np.float32)
    for bmap, m in face_maps:
        crop_size = bmap.shape[0] * 4
        up = cv2.resize(bmap, (crop_size, crop_size), interpolation=cv2.INTER_LINEAR)
        heat = np.maximum(heat, warp_to_frame(up, m, frame.shape))
    base = frame.astype(np.float32) * 0.6
    colour = np.stack([np.ones_like(heat), heat, np.zeros_like(heat)], axis=-1) * 255.0
    a = np.clip(heat * 1.5, 0, 1)[..., None]
    return np.clip(base * (1 - a) + colour * a, 0, 255).astype(np.uint8)
