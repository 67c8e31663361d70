"""Reading video and image sequences with PyAV (still images: :mod:`doppel.io.image`; writing video:
:mod:`doppel.io.writer`; writing sequences: :mod:`doppel.io.sequence`).

With those, the one place that opens media. Conventions at its boundary: frames are ``numpy.uint8``
arrays of shape ``(H, W, 3)`` in **RGB** order; with ``depth=16`` a frame of a deeper source also comes
as ``uint16`` (``Frame.image16``), so 10-bit and 16-bit plates keep their precision to the output.

- Reading gives exact, zero-based frame indices in decode (presentation) order with each frame's
  own timestamp, so variable-frame-rate footage keeps its timing.
- An image sequence is a folder of images, or a pattern ``shot.%06d.exr`` / ``shot.####.exr``; it has
  no frame rate of its own: give one (``fps``), else :data:`SEQUENCE_FPS` is assumed (and logged).
- OpenEXR frames are scene-linear by convention: they are read through the sRGB transfer curve (what
  the face models and every other stage see) and written back through its inverse.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import av.error
import numpy as np

from doppel.core.errors import InputError, MediaError
from doppel.io.formats import parse_rate, sequence_pattern
from doppel.io.image import read_image

log = logging.getLogger(__name__)

SEQUENCE_FPS = Fraction(25)  # the frame rate assumed for an image sequence given none, as FFmpeg's image2 does
DEEP_IMAGES = frozenset({".exr", ".dpx", ".tif", ".tiff", ".png"})  # decoded by FFmpeg, 16-bit capable
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".exr", ".dpx"})


@dataclass(frozen=True)
class Colour:
    """A stream's colour description as FFmpeg numbers it (ITU-T H.273): primaries, transfer, matrix
    (2 = unspecified), and range (1 = limited/TV, 2 = full/PC, 0 = unspecified)."""

    primaries: int = 2
    transfer: int = 2
    matrix: int = 2
    range: int = 0

    @property
    def specified(self) -> bool:
        return self.matrix not in (0, 2) or self.range in (1, 2) or self.primaries != 2 or self.transfer != 2


@dataclass(frozen=True)
class VideoInfo:
    """What a media input is. ``frame_count`` is exact (counted, not estimated)."""

    path: Path
    kind: Literal["video", "images", "image"]
    width: int
    height: int
    fps: float
    frame_count: int
    duration: float
    has_audio: bool
    variable_frame_rate: bool
    time_base: Fraction | None = None
    audio_codec: str | None = None
    rate: Fraction = Fraction(25)        # the exact frame rate (24000/1001, not 23.976)
    bits: int = 8                        # bit depth of the pictures
    timecode: str | None = None          # of the first frame, HH:MM:SS:FF
    colour: Colour = field(default_factory=Colour)
    sample_aspect: Fraction = Fraction(1)
    start_number: int = 0                # an image sequence's first frame number


@dataclass
class Frame:
    """One decoded frame: exact index, timestamp in its stream's time base, time in seconds, RGB image."""

    index: int
    pts: int | None
    time: float
    image: np.ndarray
    image16: np.ndarray | None = None  # uint16 (H, W, 3) RGB when read with depth=16 from a deeper source


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def _natural(p: Path) -> list[int | str]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]


def sequence_files(path: Path) -> tuple[list[Path], int] | None:
    """The frames of an image sequence (a folder of images, or a ``%06d``/``####`` pattern) in order, with
    the first frame's number; None when ``path`` is neither."""
    if path.is_dir():
        files = sorted((p for p in path.iterdir() if p.is_file() and is_image_file(p)), key=_natural)
        numbers = [re.findall(r"\d+", p.stem) for p in files]
        return files, int(numbers[0][-1]) if files and numbers[0] else 0
    found = sequence_pattern(path.name)
    if found is None:
        return None
    before, after = found[0].split("{}")
    digits = re.compile(re.escape(before) + r"(\d+)" + re.escape(after) + "$")
    hits = sorted((int(m.group(1)), p) for p in path.parent.glob("*") if (m := digits.match(p.name)))
    return [p for _, p in hits], (hits[0][0] if hits else 0)


def _linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)


def _read_deep(file: Path) -> np.ndarray:
    """One image through FFmpeg as uint16 RGB (EXR: linear values through the sRGB curve)."""
    with open_input(file) as c:
        frame = next(c.decode(video=0))
        if file.suffix.lower() == ".exr":
            rgb = frame.to_ndarray(format="gbrpf32le")  # (H, W, 3) float RGB, whatever the file's precision
            return np.round(_linear_to_srgb(rgb) * 65535.0).astype(np.uint16)
        return np.asarray(frame.to_ndarray(format="rgb48le"), dtype=np.uint16)


def _image_size(file: Path) -> tuple[int, int]:
    """(width, height) of one image (EXR and DPX through FFmpeg, which OpenCV may not read)."""
    if file.suffix.lower() in (".exr", ".dpx"):
        with open_input(file) as c:
            cc = c.streams.video[0].codec_context
            return int(cc.width), int(cc.height)
    img = read_image(file)
    return img.shape[1], img.shape[0]


def _image_bits(file: Path) -> int:
    if file.suffix.lower() not in DEEP_IMAGES:
        return 8
    with open_input(file) as c:
        fmt = c.streams.video[0].codec_context.format
        return max((comp.bits for comp in fmt.components), default=8) if fmt is not None else 8


def media_exists(path: Path) -> bool:
    """Whether ``path`` is a file, a folder, or an image-sequence pattern that matches at least one file."""
    if path.exists():
        return True
    seq = sequence_files(path)
    return bool(seq and seq[0])


def open_input(path: Path) -> av.container.InputContainer:
    """Open a media file for reading; :class:`InputError`/:class:`MediaError` naming it otherwise."""
    if not path.exists():
        raise InputError("no such file", path=path)
    try:
        return av.open(str(path), mode="r")
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise MediaError(f"not a readable video or image ({_reason(exc)})", path=path) from None


def _reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.split(":")[0] if text else type(exc).__name__


def probe(path: str | Path, *, fps: str | float | Fraction | None = None) -> VideoInfo:
    """Describe a video file, a still image, or an image sequence (a folder or a pattern; ``fps`` is its
    frame rate, :data:`SEQUENCE_FPS` when not given)."""
    path = Path(path)
    seq = sequence_files(path) if not path.is_file() else None
    if seq is not None:
        files, start = seq
        if not files:
            what = "folder holds no images" if path.is_dir() else "no files match this image-sequence pattern"
            raise MediaError(f"{what} to read as a sequence", path=path)
        if fps is None:
            log.warning("%s: an image sequence has no frame rate; assuming %s (give --fps)", path, SEQUENCE_FPS)
        rate = parse_rate(fps) if fps is not None else SEQUENCE_FPS
        w, h = _image_size(files[0])
        n = len(files)
        return VideoInfo(path, "images", w, h, float(rate), n, float(n / rate), False,
                         False, rate=rate, bits=_image_bits(files[0]), start_number=start)
    if is_image_file(path):
        w, h = _image_size(path)
        return VideoInfo(path, "image", w, h, float(SEQUENCE_FPS), 1, 0.0, False, False,
                         rate=SEQUENCE_FPS, bits=_image_bits(path))
    with open_input(path) as container:
        if not container.streams.video:
            raise MediaError("has no video stream", path=path)
        stream = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        # Count by demuxing (cheap, no decode): container headers are often missing or wrong.
        pts: list[int] = []
        try:
            for packet in container.demux(stream):
                if packet.size and packet.pts is not None:
                    pts.append(packet.pts)
        except av.error.FFmpegError as exc:
            raise MediaError(f"is damaged or truncated ({_reason(exc)})", path=path) from None
        if not pts:
            raise MediaError("has a video stream with no frames", path=path)
        declared = int(stream.frames or 0)  # what the container's index promises (0: it does not say)
        if declared and len(pts) < declared:
            raise MediaError(f"is damaged or truncated ({len(pts)} of {declared} frames present)", path=path)
        pts.sort()
        tb = stream.time_base or Fraction(1, 1)
        deltas = np.diff(np.asarray(pts, dtype=np.int64))
        if deltas.size:
            step = float(np.median(deltas))
            vfr = bool(np.any(np.abs(deltas.astype(np.float64) - step) > max(1.0, 0.02 * step)))
            duration = float((pts[-1] - pts[0] + step) * tb)
        else:
            vfr, duration = False, 0.0
        rate = Fraction(stream.average_rate) if stream.average_rate else \
            Fraction(len(pts) / duration if duration else 25).limit_denominator(1001 * 1000)
        cc = stream.codec_context
        if not cc.width:
            raise MediaError("video stream has no picture size", path=path)
        audio_codec = audio.codec_context.name if audio is not None and audio.codec_context is not None else None
        fmt = cc.format
        bits = max((comp.bits for comp in fmt.components), default=8) if fmt is not None else 8
        colour = Colour(int(cc.color_primaries or 2), int(cc.color_trc or 2), int(cc.colorspace or 2),
                        int(cc.color_range or 0))
        tags = {k.lower(): v for k, v in (*container.metadata.items(), *stream.metadata.items())}
        timecode = tags.get("timecode")
        sar = Fraction(stream.sample_aspect_ratio) if stream.sample_aspect_ratio else Fraction(1)
        return VideoInfo(path, "video", cc.width, cc.height, float(rate), len(pts), duration, audio_codec is not None,
                         vfr, tb, audio_codec, rate=rate, bits=bits, timecode=timecode, colour=colour,
                         sample_aspect=sar)


def read_frames(path: str | Path, *, every: int = 1, start: int = 0, stop: int | None = None,
                depth: Literal[8, 16] = 8, fps: str | float | Fraction | None = None) -> Iterator[Frame]:
    """Yield frames ``start, start+every, ...`` below ``stop``, each with its exact index and time. With
    ``depth=16``, frames of a source deeper than 8 bits also carry ``image16``."""
    if every < 1:
        raise ValueError("every must be >= 1")
    path = Path(path)
    seq = sequence_files(path) if not path.is_file() else None
    if seq is not None or is_image_file(path):
        files = seq[0] if seq is not None else [path]
        rate = parse_rate(fps) if fps is not None else SEQUENCE_FPS
        deep = depth == 16 and bool(files) and _image_bits(files[0]) > 8
        for i, file in enumerate(files):
            if i < start or (stop is not None and i >= stop) or (i - start) % every:
                continue
            if deep:
                image16 = _read_deep(file)
                yield Frame(i, i, float(i / rate), ((image16.astype(np.uint32) + 128) // 257).astype(np.uint8),
                            image16)
            elif file.suffix.lower() in (".exr", ".dpx"):
                yield Frame(i, i, float(i / rate), ((_read_deep(file).astype(np.uint32) + 128) // 257)
                            .astype(np.uint8))
            else:
                yield Frame(i, i, float(i / rate), read_image(file))
        return
    with open_input(path) as container:
        if not container.streams.video:
            raise MediaError("has no video stream", path=path)
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fmt = stream.codec_context.format
        deep = depth == 16 and fmt is not None and max((c.bits for c in fmt.components), default=8) > 8
        index = -1
        try:
            for frame in container.decode(stream):
                index += 1
                if stop is not None and index >= stop:
                    break
                if index < start or (index - start) % every:
                    continue
                time = float(frame.time) if frame.time is not None else index / float(stream.average_rate or 25)
                if deep:
                    image16 = np.asarray(frame.to_ndarray(format="rgb48le"), dtype=np.uint16)
                    image8 = ((image16.astype(np.uint32) + 128) // 257).astype(np.uint8)
                    yield Frame(index, frame.pts, time, image8, image16)
                else:
                    yield Frame(index, frame.pts, time, frame.to_ndarray(format="rgb24"))
        except av.error.FFmpegError as exc:
            raise MediaError(f"decoding failed at frame {index + 1} ({_reason(exc)})", path=path) from None
