"""Writing image sequences: one file per frame (16-bit PNG or TIFF, half-float OpenEXR, 10-bit DPX).

Each frame is encoded by FFmpeg (through PyAV) and written atomically under its own name, numbered
from a start frame (``shot.%06d.exr`` -> ``shot.001001.exr`` ...). Frames come in as RGB ``uint8`` or
``uint16``; OpenEXR frames are written scene-linear (through the inverse of the sRGB curve that
:mod:`doppel.io.video` reads them with), so an EXR plate round-trips.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import numpy as np
from av.video.codeccontext import VideoCodecContext

from doppel.core.errors import InputError
from doppel.io.atomic import write_bytes_atomic
from doppel.io.formats import SEQUENCES, OutputSpec


def _srgb_to_linear(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, np.power((x + 0.055) / 1.055, 2.4))


def encode_frame(image: np.ndarray, suffix: str) -> bytes:
    """One RGB frame (``uint8`` or ``uint16`` ``(H, W, 3)``) as the bytes of an image file of ``suffix``."""
    spec = SEQUENCES[suffix]
    if image.dtype not in (np.uint8, np.uint16) or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected (H, W, 3) uint8 or uint16 RGB, got {image.shape} {image.dtype}")
    h, w = image.shape[:2]
    ctx = cast(VideoCodecContext, av.CodecContext.create(spec.encoder, "w"))
    ctx.width, ctx.height, ctx.pix_fmt, ctx.time_base = w, h, spec.pix_fmt, Fraction(1, 25)
    if spec.float_:
        ctx.options = {"format": "half", "compression": "zip1"}
        scale = 255.0 if image.dtype == np.uint8 else 65535.0
        linear = _srgb_to_linear(image.astype(np.float32) / scale).astype(np.float32)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(linear), format="gbrpf32le")
    else:
        fmt = "rgb24" if image.dtype == np.uint8 else "rgb48le"
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format=fmt).reformat(format=spec.pix_fmt)
    packets = ctx.encode(frame) + ctx.encode(None)
    return b"".join(bytes(p) for p in packets)


class SequenceWriter:
    """Writes frames of one output as an image sequence; frame ``i`` goes to number ``start + i``."""

    def __init__(self, spec: OutputSpec, *, width: int, height: int, start: int = 0) -> None:
        if not spec.is_sequence:
            raise ValueError(f"{spec.path} is not an image-sequence pattern")
        folder = spec.path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot write here ({exc.strerror})", path=folder) from None
        self.spec, self.width, self.height, self.start = spec, width, height, start
        self.written: list[Path] = []

    def write(self, image: np.ndarray, index: int) -> Path:
        if image.shape[:2] != (self.height, self.width):
            raise ValueError(f"expected a {self.width}x{self.height} frame, got {image.shape}")
        path = self.spec.frame_path(self.start + index)
        write_bytes_atomic(path, encode_frame(image, self.spec.suffix))
        self.written.append(path)
        return path
