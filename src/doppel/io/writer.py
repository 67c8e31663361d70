"""Writing video with PyAV: a delivery codec, the source's timing, timecode, pixel aspect and colour tags,
and the source's audio carried across.

Frames come in as RGB, ``uint8`` or ``uint16`` (``(H, W, 3)``); 16-bit frames keep their precision into
10-bit and 16-bit codecs. The RGB -> YUV conversion uses the matrix and range the output is tagged with,
so a tagged BT.709 plate comes back as BT.709, not re-interpreted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import numpy as np
from av.video.stream import VideoStream

from doppel.core.errors import InputError
from doppel.io.audio import AudioCarry
from doppel.io.formats import CODECS, check_size
from doppel.io.video import Colour

log = logging.getLogger(__name__)



class VideoWriter:
    """Encode RGB frames with one of :data:`doppel.io.formats.CODECS` and carry another file's audio across.

    Written to a temporary file beside ``path`` and renamed on :meth:`close`, so an interrupted write
    never leaves a half-written output under the final name. Use as a context manager: leaving the
    block with an exception discards the temporary file.

    ``time_base`` and per-frame ``pts`` keep the exact timing of a source clip (variable frame rate
    included); without them frames are spaced ``1/fps`` apart. ``timecode`` (``HH:MM:SS:FF``), ``colour``
    and ``sample_aspect`` are written into the stream as given.
    """

    def __init__(self, path: str | Path, *, width: int, height: int, fps: float | Fraction,
                 time_base: Fraction | None = None, codec: str = "h264", crf: int = 18, preset: str = "medium",
                 audio_from: str | Path | None = None, colour: Colour | None = None,
                 timecode: str | None = None, sample_aspect: Fraction | None = None) -> None:
        self.path = Path(path)
        spec = CODECS.get(codec)
        if spec is None:
            raise InputError(f"unknown codec {codec!r}; one of {', '.join(CODECS)}", path=self.path)
        if self.path.suffix.lower() not in spec.containers:
            raise InputError(f"{codec} goes in {', '.join(spec.containers)}, not {self.path.suffix!r}", path=self.path)
        if not 0 <= crf <= 51:
            raise ValueError(f"crf must be within 0..51, got {crf}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.{os.getpid()}.", suffix=f".tmp{self.path.suffix}",
                                       dir=self.path.parent)
        except OSError as exc:
            raise InputError(f"cannot write here ({exc.strerror})", path=self.path) from None
        os.close(fd)
        self._tmp = Path(tmp)
        self._out = av.open(str(self._tmp), mode="w")
        rate = Fraction(fps).limit_denominator(100000) if not isinstance(fps, Fraction) else fps
        self._video = cast(VideoStream, self._out.add_stream(spec.encoder, rate=rate))
        self._video.width, self._video.height = width, height
        check_size(codec, width, height)
        pix = spec.pix_fmt
        if spec.even and (width % 2 or height % 2):
            pix = "yuv444p"  # H.264 only: keep the exact picture rather than crop or pad it
        self._video.pix_fmt = pix
        opts: dict[str, object] = dict(spec.options)
        if spec.crf:
            opts.update(crf=str(crf), preset=preset)
        self._video.options = opts
        self.colour = colour or Colour()
        cc = self._video.codec_context
        if self.colour.specified:
            cc.color_primaries, cc.color_trc = self.colour.primaries, self.colour.transfer
            cc.colorspace, cc.color_range = self.colour.matrix, self.colour.range
        if timecode:
            self._video.metadata["timecode"] = timecode
        if sample_aspect is not None and sample_aspect != 1:
            cc.sample_aspect_ratio = sample_aspect
        self._tb = time_base or Fraction(1, 1) / rate
        cc.time_base = self._tb
        self._pix = pix
        self._alpha = spec.alpha
        self._next_pts = 0
        self.frames_written = 0
        self._closed = False
        self._audio = None if audio_from is None else AudioCarry(self._out, Path(audio_from), self.path.suffix)

    def write(self, image: np.ndarray, pts: int | None = None) -> None:
        """Encode one RGB frame (``uint8`` or ``uint16``; RGBA ``(H, W, 4)`` for a codec with alpha); ``pts`` in
        ``time_base`` units (default: the next slot)."""
        h, w = self._video.height, self._video.width
        channels = image.shape[2] if image.ndim == 3 else 0
        if image.dtype not in (np.uint8, np.uint16) or image.shape[:2] != (h, w) \
                or channels not in ((3, 4) if self._alpha else (3,)):
            raise ValueError(f"expected ({h}, {w}, 3{' or 4' if self._alpha else ''}) uint8 or uint16 frame, "
                             f"got {image.shape} {image.dtype}")
        fmt = {(np.uint8, 3): "rgb24", (np.uint16, 3): "rgb48le", (np.uint8, 4): "rgba",
               (np.uint16, 4): "rgba64le"}[(image.dtype.type, channels)]
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format=fmt)
        if self.colour.specified:
            frame = frame.reformat(format=self._pix, dst_colorspace=self.colour.matrix,
                                   dst_color_range=self.colour.range)
            frame.colorspace, frame.color_range = self.colour.matrix, self.colour.range
        frame.pts = self._next_pts if pts is None else pts
        frame.time_base = self._tb
        self._next_pts = frame.pts + max(1, round(1 / (self._tb * self._video.codec_context.framerate)))
        for packet in self._video.encode(frame):
            self._mux_video(packet)
        self.frames_written += 1

    def _mux_video(self, packet: av.Packet) -> None:
        if self._audio is not None and packet.dts is not None and packet.time_base is not None:
            self._audio.until(float(packet.dts * packet.time_base))  # interleaved: never a whole track buffered
        self._out.mux(packet)

    def close(self) -> Path:
        """Flush the encoder, write the remaining audio, and rename into place (once; later calls do nothing)."""
        if self._closed:
            return self.path
        self._closed = True
        for packet in self._video.encode(None):
            self._mux_video(packet)
        if self._audio is not None:
            self._audio.until(None)
        self._out.close()
        if self._audio is not None:
            self._audio.close()
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Discard everything written so far."""
        self._closed = True
        with contextlib.suppress(Exception):
            self._out.close()
        if self._audio is not None:
            self._audio.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
