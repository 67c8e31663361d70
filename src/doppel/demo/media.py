"""Synthetic clips of a person, made from public-domain portraits shipped by installed packages.

- ``astronaut``: scikit-image's ``data.astronaut()`` (Eileen Collins, NASA, public domain).
- ``grace_hopper``: matplotlib's ``sample_data/grace_hopper.jpg`` (US Navy, public domain).

The portrait is moved with smooth synthetic head motion (rotation, translation, zoom) over a
textured background under slowly changing light, and written with a quiet audio tone. The exact
portrait -> frame transform of every frame is returned, so tests know the true motion.

Run ``python -m doppel.demo.media OUT.mp4 [--portrait NAME] [--seconds S]`` to write a demo clip.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from doppel.io.image import read_image
from doppel.io.writer import VideoWriter

PortraitName = Literal["astronaut", "grace_hopper"]
PORTRAITS: tuple[PortraitName, ...] = ("astronaut", "grace_hopper")

# Face box (x0, y0, x1, y1) of each portrait, as dlib's HOG detector finds it.
_FACE_BOX: dict[str, tuple[float, float, float, float]] = {
    "astronaut": (179.0, 83.0, 267.0, 171.0),
    "grace_hopper": (161.0, 137.0, 377.0, 353.0),
}


def portrait(name: PortraitName) -> np.ndarray:
    """The portrait as RGB uint8 ``(H, W, 3)``."""
    if name == "astronaut":
        from skimage import data

        return np.ascontiguousarray(data.astronaut())
    if name == "grace_hopper":
        from matplotlib import cbook

        return read_image(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    raise ValueError(f"unknown portrait {name!r}; expected one of {PORTRAITS}")


@dataclass(frozen=True)
class Motion:
    """Amplitudes of the synthetic motion: degrees, fraction of frame width, fraction of size,
    relative light change; ``period`` is the slowest cycle in frames."""

    rotation: float = 8.0
    shift: float = 0.06
    zoom: float = 0.06
    light: float = 0.15
    period: float = 40.0


@dataclass
class SyntheticClip:
    """``frames``: RGB uint8 ``(H, W, 3)``; ``transforms``: ``(T, 2, 3)`` portrait -> frame;
    ``present``: ``(T,)`` bool, whether the portrait is in the frame."""

    name: str
    frames: list[np.ndarray]
    transforms: np.ndarray
    present: np.ndarray

    def true_points(self, points: np.ndarray) -> np.ndarray:
        """Where portrait points ``(N, 2)`` are in every frame: ``(T, N, 2)``."""
        p = np.asarray(points, dtype=np.float64)
        return np.stack([p @ m[:, :2].T + m[:, 2] for m in self.transforms])


def _background(width: int, height: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(40, 200, (6, 8, 3), dtype=np.uint8)
    bg = cv2.resize(small, (width + 64, height + 64), interpolation=cv2.INTER_CUBIC)
    return cv2.GaussianBlur(bg, (0, 0), 9)


def synth_frames(name: PortraitName = "astronaut", frames: int = 40, width: int = 320, height: int = 240, *,
                 face_size: float = 0.4, motion: Motion | None = None, absent: tuple[int, int] | None = None,
                 seed: int = 0) -> SyntheticClip:
    """Frames of the portrait moving smoothly; its face is about ``face_size`` x ``height`` tall.

    ``absent=(a, b)`` leaves frames ``a <= i < b`` without the portrait (background only).
    """
    if frames < 1 or width < 16 or height < 16:
        raise ValueError(f"need >= 1 frame of at least 16x16, got {frames} of {width}x{height}")
    motion = motion or Motion()
    img = portrait(name)
    x0, y0, x1, y1 = _FACE_BOX[name]
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    base_scale = face_size * height / (x1 - x0)
    bg = _background(width, height, seed)
    ones = np.full(img.shape[:2], 255, np.uint8)
    out, transforms, present = [], [], []
    for i in range(frames):
        ph = 2 * math.pi * i / motion.period
        angle = motion.rotation * math.sin(ph)
        scale = base_scale * (1 + motion.zoom * math.sin(0.5 * ph + 1.0))
        target = np.array([width / 2 + motion.shift * width * math.sin(0.7 * ph + 0.3),
                           height / 2 + motion.shift * width * 0.6 * math.sin(1.3 * ph)])
        m = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), angle, scale)
        m[:, 2] += target - centre
        ox, oy = int(16 + 12 * math.sin(0.3 * ph)), int(16 + 12 * math.cos(0.4 * ph))
        frame: np.ndarray = bg[oy:oy + height, ox:ox + width].astype(np.float32)
        shown = absent is None or not (absent[0] <= i < absent[1])
        if shown:
            face = cv2.warpAffine(img, m, (width, height), flags=cv2.INTER_LINEAR).astype(np.float32)
            alpha = cv2.warpAffine(ones, m, (width, height), flags=cv2.INTER_LINEAR).astype(np.float32)[..., None]
            frame = frame * (1 - alpha / 255) + face * (alpha / 255)
        gain = 1 + motion.light * math.sin(0.45 * ph + 2.0)
        tint = np.array([1 + 0.2 * motion.light * math.sin(0.2 * ph), 1.0, 1 - 0.2 * motion.light * math.sin(0.2 * ph)],
                        np.float32)
        out.append(np.clip(frame * gain * tint, 0, 255).astype(np.uint8))
        transforms.append(m)
        present.append(shown)
    return SyntheticClip(name, out, np.stack(transforms), np.asarray(present))


def _write_tone(path: Path, seconds: float, *, rate: int = 48000, hz: float = 440.0) -> None:
    n = max(1, int(rate * seconds))
    t = np.arange(n) / rate
    env = np.minimum(1.0, np.minimum(t, seconds - t) / 0.05).clip(0, 1)
    samples = (0.15 * 32767 * env * np.sin(2 * math.pi * hz * t)).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())


def write_clip(path: str | Path, clip: SyntheticClip, *, fps: int = 25, audio: bool = True, crf: int = 18) -> Path:
    """Encode a synthetic clip as H.264 (with a 440 Hz tone when ``audio``), atomically."""
    path = Path(path)
    h, w = clip.frames[0].shape[:2]
    with tempfile.TemporaryDirectory(prefix="doppel-tone-") as tmp:
        tone = Path(tmp) / "tone.wav"
        if audio:
            _write_tone(tone, len(clip.frames) / fps)
        with VideoWriter(path, width=w, height=h, fps=fps, crf=crf, preset="veryfast",
                         audio_from=tone if audio else None) as writer:
            for frame in clip.frames:
                writer.write(frame)
    return path


def make_demo_clip(path: str | Path, *, name: PortraitName = "astronaut", seconds: float = 4.0,
                   width: int = 640, height: int = 360, fps: int = 25, motion: Motion | None = None,
                   seed: int = 1) -> Path:
    """The built-in demo clip: a portrait moving for ``seconds`` at ``width`` x ``height``
    (``motion``: default amplitudes with a 2.5 s cycle; ``seed``: the background)."""
    clip = synth_frames(name, max(1, round(seconds * fps)), width, height,
                        motion=motion or Motion(period=2.5 * fps), seed=seed)
    return write_clip(path, clip, fps=fps)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write a synthetic demo clip of a public-domain portrait.")
    parser.add_argument("out", type=Path)
    parser.add_argument("--portrait", choices=PORTRAITS, default="astronaut")
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args(argv)
    print(make_demo_clip(args.out, name=args.portrait, seconds=args.seconds))


if __name__ == "__main__":
    main()
