"""Scenes for the segmenter benchmark (not a benchmark itself): occluders drawn over real clips with exact
masks, an oracle swapper that never reproduces an occluder, and per-frame leak from a replayed render.

Occluders are drawn with doppel's own synthetic families (``doppel.segment.synth``), from the
*held-out* ones only (never seen in training): a skin-toned blob with a dark rim sweeping across
the mouth (issue 13's hand), a fist and a phone passing over a cheek, and aviator sunglasses that
move with the head. Each frame's masks are kept exactly as drawn, in frame pixels.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from doppel.io.video import probe, read_frames
from doppel.io.writer import VideoWriter
from doppel.ops.align import warp_to_face
from doppel.segment import synth
from doppel.segment.labels import lifted_hull
from doppel.segment.paint import Occluder, paint


@dataclass
class Scene:
    """What was drawn on each frame: bool ``(H, W)`` masks of the occluders and of the sunglasses."""

    occluder: dict[int, np.ndarray] = field(default_factory=dict)
    glasses: dict[int, np.ndarray] = field(default_factory=dict)
    kinds: dict[int, str] = field(default_factory=dict)

    def covered(self, i: int) -> np.ndarray | None:
        a, b = self.occluder.get(i), self.glasses.get(i)
        if a is None and b is None:
            return None
        return (a if a is not None else False) | (b if b is not None else False)  # type: ignore[operator]


def _plan(n: int, seed: int) -> list[tuple[int, int, str, Occluder, tuple[float, float], tuple[float, float]]]:
    """``(first, last, kind, occluder, start offset, end offset)``: sweeps in face units over frame spans."""
    rng = np.random.default_rng(seed)
    q = n // 10
    out = []
    hand = synth.draw(rng, "rimmed_blob", skin=(0.78, 0.6, 0.5))
    centre = np.mean([p.polygon.mean(0) for p in hand.parts], axis=0)
    to_mouth = (0.0 - centre[0], 1.25 - centre[1])
    out.append((q, 4 * q, "rimmed_blob", hand.moved(*to_mouth), (-2.2, 0.0), (2.2, 0.0)))
    glasses = synth.draw(rng, "aviator")
    out.append((4 * q + 5, 7 * q + 5, "aviator", glasses, (0.0, 0.0), (0.0, 0.0)))
    for kind, span in (("fist", (7 * q + 8, 8 * q + 8)), ("phone", (8 * q + 12, 9 * q + 12))):
        o = synth.draw(rng, kind, skin=(0.8, 0.62, 0.52))
        c = np.mean([p.polygon.mean(0) for p in o.parts], axis=0)
        out.append((span[0], span[1], kind, o.moved(0.6 - c[0], 0.9 - c[1]), (0.0, 1.8), (0.0, -1.2)))
    return out


def occlude_clip(src: Path, landmarks: dict[int, np.ndarray], out: Path, seed: int = 13) -> Scene:
    """Write ``out``: ``src`` with held-out occluders drawn over the face (``landmarks``: frame pixels per
    frame with a face), near-lossless H.264 with the source's audio. Returns what was drawn."""
    info = probe(src)
    plan = _plan(info.frame_count, seed)
    scene = Scene()
    with VideoWriter(out, width=info.width, height=info.height, fps=info.fps, time_base=info.time_base, crf=10,
                     preset="veryfast", audio_from=src) as writer:
        for frame in read_frames(src):
            img = frame.image
            lm = landmarks.get(frame.index)
            if lm is not None:
                todo = []
                for first, last, kind, occ, (x0, y0), (x1, y1) in plan:
                    if first <= frame.index <= last:
                        t = (frame.index - first) / max(1, last - first)
                        todo.append((kind, occ.moved(x0 + t * (x1 - x0), y0 + t * (y1 - y0))))
                if todo:
                    painted = paint(img.astype(np.float32) / 255.0, lm, [o for _, o in todo])
                    img = np.clip(painted.image * 255.0 + 0.5, 0, 255).astype(np.uint8)
                    if (painted.occluder > 0.5).any():
                        scene.occluder[frame.index] = painted.occluder > 0.5
                    if (painted.glasses > 0.5).any():
                        scene.glasses[frame.index] = painted.glasses > 0.5
                    scene.kinds[frame.index] = "+".join(k for k, _ in todo)
            writer.write(img, frame.pts if info.time_base is not None else None)
    return scene


def core_region(lm: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The jaw-to-brows hull of a face in frame pixels: where an occluder must not be painted over."""
    h, w = shape[:2]
    size = max(h, w)
    return lifted_hull(lm, size, 0.0)[:h, :w] > 0.5


class OracleSwapper:
    """A stand-in for a model trained on the clean clip (benchmark only): each aligned crop of the occluded
    clip is answered with the same crop of the *clean* clip, recoloured (red and blue swapped, so the
    swap is visibly another face). Like a real model, it never reproduces an occluder."""

    def __init__(self, occluded: Path, clean: Path, transforms: dict[int, np.ndarray], resolution: int,
                 face_type: str = "full") -> None:
        self.resolution, self.face_type = resolution, face_type
        self.table: dict[str, np.ndarray] = {}
        plates = {f.index: f.image for f in read_frames(occluded) if f.index in transforms}
        for f in read_frames(clean):
            m = transforms.get(f.index)
            if m is None or f.index not in plates:
                continue
            key = self._key(warp_to_face(plates[f.index], m, resolution).astype(np.float32) / 255.0)
            clean_crop = warp_to_face(f.image, m, resolution).astype(np.float32) / 255.0
            self.table[key] = np.ascontiguousarray(clean_crop[..., ::-1])
        self.misses = 0

    @staticmethod
    def _key(crop: np.ndarray) -> str:
        return hashlib.sha1(np.ascontiguousarray(crop, np.float32).tobytes()).hexdigest()

    def swap(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = []
        for crop in faces:
            found = self.table.get(self._key(crop))
            if found is None:
                self.misses += 1
                found = np.ascontiguousarray(crop[..., ::-1])
            out.append(found)
        return np.stack(out).astype(np.float32), np.ones((*faces.shape[:3], 1), np.float32)


def frame_leaks(frames: Any, scene: Scene, landmarks: dict[int, np.ndarray]) -> dict[int, float]:
    """Per occluded frame: the share of its occluder pixels inside the face's core hull that the swap
    covers (matte > 0.5), from replayed frames (``doppel.workflow.replay.ReplayedFrame``)."""
    out: dict[int, float] = {}
    for fr in frames:
        cover = scene.covered(fr.index)
        lm = landmarks.get(fr.index)
        if cover is None or lm is None:
            continue
        on = cover & core_region(lm, cover.shape)
        if on.sum() < 20:
            continue
        painted = fr.matte > 127 if fr.matte is not None else np.zeros_like(on)
        out[fr.index] = float((painted & on).sum()) / float(on.sum())
    return out


def frame_transforms(faces: dict[int, Any], resolution: int, face_type: str) -> dict[int, np.ndarray]:
    """Frame -> crop transforms exactly as merge computes them for these face records."""
    from doppel.merge.stages import crop_transform

    return {i: crop_transform(f, resolution, face_type) for i, f in faces.items()}
