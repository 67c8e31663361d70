"""Reading and writing video and image sequences with PyAV (still images: :mod:`doppel.io.image`).

With :mod:`doppel.io.image`, the one place that opens media. Conventions at its boundary:
frames are ``numpy.uint8`` arrays of shape ``(H, W, 3)`` in **RGB** order.

- Reading gives exact, zero-based frame indices in decode (presentation) order with each
  frame's own timestamp, so variable-frame-rate footage keeps its timing.
- Writing encodes H.264 (yuv420p, chosen CRF) or a PNG sequence, and carries the audio of a
  source file across: copied unchanged when the output container can hold the codec,
  re-encoded otherwise.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import av
import av.error
import numpy as np

from doppel.core.errors import InputError, MediaError
from doppel.io.image import read_image, write_image

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
SEQUENCE_FPS = 25.0  # the frame rate assumed for an image sequence, as FFmpeg's image2 demuxer does

# Audio codecs each output container holds as-is; anything else is re-encoded.
_AUDIO_COPY_OK: dict[str, frozenset[str] | None] = {
    ".mp4": frozenset({"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"}),
    ".m4v": frozenset({"aac", "mp3", "alac", "ac3", "eac3"}),
    ".mov": frozenset({"aac", "mp3", "alac", "ac3", "pcm_s16le", "pcm_s24le", "pcm_s32le", "pcm_f32le"}),
    ".mkv": None,  # Matroska holds any codec
}
_AUDIO_REENCODE: dict[str, str] = {}  # re-encode target per container; AAC where not named


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


@dataclass
class Frame:
    """One decoded frame: exact index, timestamp in its stream's time base, time in seconds, RGB image."""

    index: int
    pts: int | None
    time: float
    image: np.ndarray


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def _sequence_files(path: Path) -> list[Path]:
    files = sorted(p for p in path.iterdir() if p.is_file() and is_image_file(p))
    # Natural order so that frame_2 comes before frame_10.
    files.sort(key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)])
    return files


def _open(path: Path) -> av.container.InputContainer:
    if not path.exists():
        raise InputError("no such file", path=path)
    try:
        return av.open(str(path), mode="r")
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise MediaError(f"not a readable video or image ({_reason(exc)})", path=path) from None


def _reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.split(":")[0] if text else type(exc).__name__


def probe(path: str | Path) -> VideoInfo:
    """Describe a video file, a still image, or a folder of images (an image sequence)."""
    path = Path(path)
    if path.is_dir():
        files = _sequence_files(path)
        if not files:
            raise MediaError("folder holds no images to read as a sequence", path=path)
        first = read_image(files[0])
        n = len(files)
        return VideoInfo(path, "images", first.shape[1], first.shape[0], SEQUENCE_FPS, n, n / SEQUENCE_FPS,
                         False, False)
    if is_image_file(path):
        img = read_image(path)
        return VideoInfo(path, "image", img.shape[1], img.shape[0], SEQUENCE_FPS, 1, 0.0, False, False)
    with _open(path) as container:
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
        fps = float(stream.average_rate) if stream.average_rate else (len(pts) / duration if duration else 0.0)
        if not stream.codec_context.width:
            raise MediaError("video stream has no picture size", path=path)
        audio_codec = audio.codec_context.name if audio is not None and audio.codec_context is not None else None
        return VideoInfo(path, "video", stream.codec_context.width, stream.codec_context.height, fps, len(pts),
                         duration, audio_codec is not None, vfr, tb, audio_codec)


def read_frames(path: str | Path, *, every: int = 1, start: int = 0, stop: int | None = None) -> Iterator[Frame]:
    """Yield frames ``start, start+every, ...`` below ``stop``, each with its exact index and time."""
    if every < 1:
        raise ValueError("every must be >= 1")
    path = Path(path)
    if path.is_dir() or is_image_file(path):
        files = _sequence_files(path) if path.is_dir() else [path]
        for i, file in enumerate(files):
            if i < start or (stop is not None and i >= stop) or (i - start) % every:
                continue
            yield Frame(i, i, i / SEQUENCE_FPS, read_image(file))
        return
    with _open(path) as container:
        if not container.streams.video:
            raise MediaError("has no video stream", path=path)
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        index = -1
        try:
            for frame in container.decode(stream):
                index += 1
                if stop is not None and index >= stop:
                    break
                if index < start or (index - start) % every:
                    continue
                time = float(frame.time) if frame.time is not None else index / float(stream.average_rate or 25)
                yield Frame(index, frame.pts, time, frame.to_ndarray(format="rgb24"))
        except av.error.FFmpegError as exc:
            raise MediaError(f"decoding failed at frame {index + 1} ({_reason(exc)})", path=path) from None


class VideoWriter:
    """Encode RGB frames to H.264 (yuv420p) and carry another file's audio across.

    Written to a temporary file beside ``path`` and renamed on :meth:`close`, so an interrupted
    write never leaves a half-written output under the final name. Use as a context manager:
    leaving the block with an exception discards the temporary file.

    ``time_base`` and per-frame ``pts`` keep the exact timing of a source clip (variable frame
    rate included); without them frames are spaced ``1/fps`` apart.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        width: int,
        height: int,
        fps: float | Fraction,
        time_base: Fraction | None = None,
        crf: int = 18,
        preset: str = "medium",
        audio_from: str | Path | None = None,
    ) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() not in _AUDIO_COPY_OK:
            raise InputError(f"unsupported output container {self.path.suffix!r}; use one of "
                             f"{', '.join(sorted(_AUDIO_COPY_OK))}", path=self.path)
        if not 0 <= crf <= 51:
            raise ValueError(f"crf must be within 0..51, got {crf}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=f".tmp{self.path.suffix}",
                                       dir=self.path.parent)
        except OSError as exc:
            raise InputError(f"cannot write here ({exc.strerror})", path=self.path) from None
        os.close(fd)
        self._tmp = Path(tmp)
        self._out = av.open(str(self._tmp), mode="w")
        rate = Fraction(fps).limit_denominator(100000) if not isinstance(fps, Fraction) else fps
        self._video = self._out.add_stream("libx264", rate=rate)
        self._video.width, self._video.height = width, height
        # yuv420p needs even sizes; keep the exact picture with 4:4:4 rather than crop or pad it.
        self._video.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        self._video.options = {"crf": str(crf), "preset": preset}
        self._tb = time_base or Fraction(1, 1) / rate
        self._video.codec_context.time_base = self._tb
        self._next_pts = 0
        self._audio_in: av.container.InputContainer | None = None
        self._audio_packets: Iterator[av.Packet] | None = None
        self._pending_audio: av.Packet | None = None
        self._audio_out: Any = None  # av's audio stream (its stubs type it as a plain Stream)
        self._audio_copy = False
        self.frames_written = 0
        if audio_from is not None:
            self._setup_audio(Path(audio_from))

    def _setup_audio(self, source: Path) -> None:
        if source.is_dir() or is_image_file(source):
            return
        src = _open(source)
        if not src.streams.audio:
            src.close()
            return
        in_stream = src.streams.audio[0]
        allowed = _AUDIO_COPY_OK[self.path.suffix.lower()]
        name = in_stream.codec_context.name
        if allowed is None or name in allowed:
            self._audio_out = self._out.add_stream_from_template(in_stream)
            self._audio_copy = True
        else:
            codec = _AUDIO_REENCODE.get(self.path.suffix.lower(), "aac")
            self._audio_out = self._out.add_stream(codec, rate=in_stream.codec_context.sample_rate or 48000)
            log.info("re-encoding %s audio as %s for %s", name, codec, self.path.suffix)
        self._audio_in = src
        self._audio_packets = iter(src.demux(in_stream))

    def write(self, image: np.ndarray, pts: int | None = None) -> None:
        """Encode one RGB uint8 frame; ``pts`` is in ``time_base`` units (default: next frame slot)."""
        if image.dtype != np.uint8 or image.shape != (self._video.height, self._video.width, 3):
            raise ValueError(f"expected ({self._video.height}, {self._video.width}, 3) uint8 RGB frame, "
                             f"got {image.shape} {image.dtype}")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts = self._next_pts if pts is None else pts
        frame.time_base = self._tb
        self._next_pts = frame.pts + max(1, round(1 / (self._tb * self._video.codec_context.framerate)))
        for packet in self._video.encode(frame):
            self._mux_video(packet)
        self.frames_written += 1

    def _mux_video(self, packet: av.Packet) -> None:
        if packet.dts is not None and packet.time_base is not None:
            self._mux_audio_until(float(packet.dts * packet.time_base))
        self._out.mux(packet)

    def _mux_audio_until(self, seconds: float | None) -> None:
        """Interleave audio with video so the muxer never buffers a whole track in memory."""
        if self._audio_packets is None or self._audio_out is None:
            return
        while True:
            packet = self._pending_audio or next(self._audio_packets, None)
            self._pending_audio = None
            if packet is None:
                self._audio_packets = None
                return
            if packet.dts is None and packet.size == 0:
                continue  # demuxer flush packet
            t = float(packet.dts * packet.time_base) if packet.dts is not None else None
            if seconds is not None and t is not None and t > seconds:
                self._pending_audio = packet
                return
            if self._audio_copy:
                packet.stream = self._audio_out
                self._out.mux(packet)
            else:
                for frame in packet.decode():
                    frame.pts = None  # let the encoder number samples itself
                    for out in self._audio_out.encode(frame):
                        self._out.mux(out)

    def close(self) -> Path:
        """Flush the encoder, write the remaining audio, and rename into place."""
        for packet in self._video.encode(None):
            self._mux_video(packet)
        self._mux_audio_until(None)
        if self._audio_out is not None and not self._audio_copy:
            for packet in self._audio_out.encode(None):
                self._out.mux(packet)
        self._out.close()
        if self._audio_in is not None:
            self._audio_in.close()
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Discard everything written so far."""
        with contextlib.suppress(Exception):
            self._out.close()
        if self._audio_in is not None:
            self._audio_in.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_png_sequence(folder: str | Path, frames: Iterator[tuple[int, np.ndarray]], *, digits: int = 6) -> int:
    """Write ``(index, rgb)`` pairs as ``folder/frame_<index>.png`` (each atomically); returns the count."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    for index, image in frames:
        write_image(folder / f"frame_{index:0{digits}d}.png", image)
        count += 1
    return count
