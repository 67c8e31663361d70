"""Fake clips for ``bench_detect`` (not a benchmark of its own), built from merge's internals, never watermarked.

Every fake is a full frame: the destination's face replaced with merge's own per-frame stages
(:func:`doppel.merge.composite.prepare_face` and :func:`~doppel.merge.composite.blend_into`: colour transfer,
matte, blend) and no watermark (merge's pipeline marks every frame it writes; these frames never go through
it). This exists in the benchmark only: doppel has no user-facing way to merge without the mark.

- ``doppel``: a trained ``cpu``-preset model (``detect_models.py``) swapping the destination's face, merged
  with the default settings (temporal smoothing on);
- ``standin``: a stand-in swapper for screening, another held-out person's face (the frame whose aligned
  landmarks are closest) warped onto the destination's landmarks at the ``cpu`` preset's 128 px, then merged
  with the given colour transfer and blend (smoothing off: each frame stands alone);
- ``sbi``: the destination's own face self-blended (:mod:`doppel.detect.sbi`) with one draw per clip.
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "src"))

from doppel.core.swap import Swapper  # noqa: E402
from doppel.detect.faces import FaceFinder, largest  # noqa: E402
from doppel.detect.sbi import SBIParams, self_blend  # noqa: E402
from doppel.detect.variants import align_donor  # noqa: E402
from doppel.io.video import read_frames  # noqa: E402
from doppel.merge.composite import TemporalState, blend_into, prepare_face  # noqa: E402
from doppel.merge.settings import MergeSettings  # noqa: E402
from doppel.ops.align import estimate_transform, transform_points, warp_to_face, warp_to_frame  # noqa: E402

Frames = list[tuple[int, np.ndarray]]
RES = 128


@dataclass
class Tracked:
    """A clip's frames (every ``stride``th) with the destination face's landmarks (frame pixels)."""

    frames: Frames
    landmarks: dict[int, np.ndarray]


def track(path: Path, stride: int = 2) -> Tracked:
    finder = FaceFinder(detect_every=5)
    frames: Frames = []
    marks: dict[int, np.ndarray] = {}
    for f in read_frames(path):
        found = finder.step(f.index, f.image)
        if f.index % stride:
            continue
        frames.append((f.index, f.image))
        if found:
            marks[f.index] = largest(found).landmarks
    return Tracked(frames, marks)


@dataclass
class Donor:
    crops: np.ndarray      # uint8 (N, RES, RES, 3) "full" aligned crops
    landmarks: np.ndarray  # (N, 68, 2) in crop pixels

    @staticmethod
    def of(clip: Tracked) -> Donor:
        crops, marks = [], []
        for index, frame in clip.frames:
            if index in clip.landmarks:
                m = estimate_transform(clip.landmarks[index], RES, "full")
                crops.append(warp_to_face(frame, m, RES))
                marks.append(transform_points(clip.landmarks[index], m))
        return Donor(np.array(crops, np.uint8), np.array(marks, np.float32))

    def nearest(self, lm_crop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = np.linalg.norm(self.landmarks - lm_crop[None], axis=2).mean(axis=1)
        i = int(np.argmin(d))
        return self.crops[i], self.landmarks[i]


def standin(clip: Tracked, donor: Donor, settings: MergeSettings) -> Frames:
    out: Frames = []
    for index, frame in clip.frames:
        lm = clip.landmarks.get(index)
        if lm is None:
            out.append((index, frame))
            continue
        m = estimate_transform(lm, RES, "full")
        lm_crop = transform_points(lm, m)
        crop, crop_lm = donor.nearest(lm_crop)
        face = align_donor(crop, crop_lm, lm_crop).astype(np.float32) / 255.0
        result = prepare_face(frame, m, face, None, lm_crop, None, settings, TemporalState())
        out.append((index, blend_into(frame, result, settings)))
    return out


def doppel_frame(frame: np.ndarray, lm: np.ndarray, swapper: Swapper, settings: MergeSettings,
                 state: TemporalState) -> np.ndarray:
    """One frame with the face at landmarks ``lm`` swapped by ``swapper`` and merged with merge's stages."""
    r = swapper.resolution
    m = estimate_transform(lm, r, swapper.face_type)  # type: ignore[arg-type]
    face, mask = swapper.swap(warp_to_face(frame, m, r).astype(np.float32)[None] / 255.0)
    result = prepare_face(frame, m, face[0], mask[0, :, :, 0], transform_points(lm, m), None, settings, state)
    return blend_into(frame, result, settings)


def doppel(clip: Tracked, swapper: Swapper, settings: MergeSettings) -> Frames:
    state = TemporalState()
    out: Frames = []
    for index, frame in clip.frames:
        lm = clip.landmarks.get(index)
        if lm is None:
            state.reset()
            out.append((index, frame))
            continue
        out.append((index, doppel_frame(frame, lm, swapper, settings, state)))
    return out


def sbi(clip: Tracked, params: SBIParams, size: int = 256) -> Frames:
    out: Frames = []
    for index, frame in clip.frames:
        lm = clip.landmarks.get(index)
        if lm is None:
            out.append((index, frame))
            continue
        m = estimate_transform(lm, size, "whole")
        crop = warp_to_face(frame, m, size)
        fake, mask = self_blend(crop, transform_points(lm, m), params)
        a = warp_to_frame(mask, m, frame.shape)[..., None]
        back = warp_to_frame(fake, m, frame.shape).astype(np.float32)
        mixed = frame.astype(np.float32) * (1 - a) + back * a
        out.append((index, np.clip(mixed + 0.5, 0, 255).astype(np.uint8)))
    return out


def encode(frames: Frames, crf: int, *, scale: float = 1.0) -> Frames:
    """Write as H.264 yuv420p at ``crf`` (x264 veryfast), read back; ``scale`` < 1 downscales first."""
    first = frames[0][1]
    h, w = first.shape[:2]
    if scale != 1.0:
        h, w = round(h * scale), round(w * scale)
    h2, w2 = h - h % 2, w - w % 2
    fd, name = tempfile.mkstemp(suffix=".mp4")
    os.close(fd)
    try:
        with av.open(name, "w") as out:
            stream = out.add_stream("libx264", rate=25)
            stream.width, stream.height, stream.pix_fmt = w2, h2, "yuv420p"
            stream.options = {"crf": str(crf), "preset": "veryfast"}
            for _, f in frames:
                if scale != 1.0:
                    f = cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA)
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(f[:h2, :w2]), format="rgb24")
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
        decoded = [f.image for f in read_frames(name)]
    finally:
        os.unlink(name)
    return [(i, img) for (i, _), img in zip(frames, decoded, strict=True)]
