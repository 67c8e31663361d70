"""What doppel writes: the delivery codecs, the image-sequence formats, frame rates and output names.

One table each (:data:`CODECS`, :data:`SEQUENCES`): the CLI's choices, the checks and the writers all
read them, so ``--help`` lists exactly what works. An output is a file (``shot.mov``: a codec in a
container) or an image sequence (``out/shot.%06d.exr`` or ``out/shot.####.exr``: one file per frame).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

from doppel.core.errors import ConfigError

CodecName = Literal["h264", "h264_10bit", "h265", "h265_10bit", "prores_hq", "prores_4444", "dnxhr_hqx", "ffv1"]


@dataclass(frozen=True)
class CodecSpec:
    """An FFmpeg encoder set up for delivery. ``bits``: the depth it keeps; ``crf``: quality by CRF."""

    encoder: str
    pix_fmt: str
    bits: int
    containers: tuple[str, ...]
    options: tuple[tuple[str, str], ...] = ()
    crf: bool = False
    alpha: bool = False
    even: bool = False  # needs even width and height (4:2:0 / 4:2:2 chroma)
    about: str = ""
    min_size: tuple[int, int] = (1, 1)  # smallest width and height the encoder takes


CODECS: dict[str, CodecSpec] = {
    "h264": CodecSpec("libx264", "yuv420p", 8, (".mp4", ".mov", ".m4v", ".mkv"), crf=True, even=True,
                      about="H.264 4:2:0 8-bit (review copies, the web)"),
    "h264_10bit": CodecSpec("libx264", "yuv420p10le", 10, (".mp4", ".mov", ".mkv"), crf=True, even=True,
                            about="H.264 4:2:0 10-bit"),
    "h265": CodecSpec("libx265", "yuv420p", 8, (".mp4", ".mov", ".mkv"), crf=True, even=True,
                      options=(("x265-params", "log-level=error"),), about="H.265 4:2:0 8-bit"),
    "h265_10bit": CodecSpec("libx265", "yuv420p10le", 10, (".mp4", ".mov", ".mkv"), crf=True, even=True,
                            options=(("x265-params", "log-level=error"),), about="H.265 4:2:0 10-bit"),
    "prores_hq": CodecSpec("prores_ks", "yuv422p10le", 10, (".mov",), options=(("profile", "3"),), even=True,
                           about="Apple ProRes 422 HQ, 10-bit (what editorial and comp expect)"),
    "prores_4444": CodecSpec("prores_ks", "yuva444p10le", 10, (".mov",), options=(("profile", "4"),), alpha=True,
                             about="Apple ProRes 4444 with alpha, 10-bit (face layers)"),
    "dnxhr_hqx": CodecSpec("dnxhd", "yuv422p10le", 10, (".mov", ".mxf"), options=(("profile", "dnxhr_hqx"),),
                           even=True, about="Avid DNxHR HQX, 10-bit 4:2:2", min_size=(256, 120)),
    "ffv1": CodecSpec("ffv1", "rgb48le", 16, (".mkv",), options=(("level", "3"),),
                      about="FFV1, lossless (archive, round trips)"),
}
DEFAULT_CODEC: dict[str, str] = {".mp4": "h264", ".m4v": "h264", ".mov": "h264", ".mkv": "ffv1", ".mxf": "dnxhr_hqx"}


@dataclass(frozen=True)
class SequenceSpec:
    """One image file per frame: the FFmpeg encoder, its pixel format and the depth it keeps."""

    encoder: str
    pix_fmt: str
    bits: int
    float_: bool = False
    about: str = ""


SEQUENCES: dict[str, SequenceSpec] = {
    ".png": SequenceSpec("png", "rgb48be", 16, about="16-bit PNG"),
    ".tif": SequenceSpec("tiff", "rgb48le", 16, about="16-bit TIFF"),
    ".tiff": SequenceSpec("tiff", "rgb48le", 16, about="16-bit TIFF"),
    ".exr": SequenceSpec("exr", "gbrpf32le", 16, float_=True, about="half-float OpenEXR"),
    ".dpx": SequenceSpec("dpx", "gbrp10le", 10, about="10-bit DPX"),
}

# The rates people type, exactly (NTSC rates are n*1000/1001, not their rounded decimals).
_NAMED_RATES = {"23.976": Fraction(24000, 1001), "23.98": Fraction(24000, 1001), "29.97": Fraction(30000, 1001),
                "47.952": Fraction(48000, 1001), "59.94": Fraction(60000, 1001), "119.88": Fraction(120000, 1001)}


def parse_rate(text: str | float | Fraction) -> Fraction:
    """A frame rate: ``24000/1001``, ``23.976`` (read as 24000/1001), ``24``, ``29.97``, any positive rational."""
    if isinstance(text, Fraction):
        rate = text
    else:
        raw = str(text).strip()
        try:
            rate = _NAMED_RATES.get(raw) or Fraction(raw).limit_denominator(1001 * 1000)
        except (ValueError, ZeroDivisionError):
            raise ConfigError(f"--fps {raw!r}: give a frame rate such as 24, 25, 23.976 or 24000/1001") from None
    if not 0 < rate <= 1000:
        raise ConfigError(f"--fps {text}: a frame rate must be within (0, 1000] frames per second")
    return rate


_PRINTF = re.compile(r"%0(\d)d")
_HASHES = re.compile(r"#+")


@dataclass(frozen=True)
class OutputSpec:
    """Where merge writes: a video file with ``codec``, or an image sequence (``pattern`` with a ``{}``
    where the frame number goes, zero-padded to ``digits``)."""

    path: Path
    codec: str | None = None
    pattern: str | None = None
    digits: int = 0
    suffix: str = ""

    @property
    def is_sequence(self) -> bool:
        return self.pattern is not None

    def frame_path(self, number: int) -> Path:
        assert self.pattern is not None
        return self.path.parent / self.pattern.format(f"{number:0{self.digits}d}")

    @property
    def bits(self) -> int:
        return SEQUENCES[self.suffix].bits if self.is_sequence else CODECS[self.codec or "h264"].bits


def sequence_pattern(name: str) -> tuple[str, int] | None:
    """``shot.%06d.exr`` or ``shot.######.exr`` -> (``shot.{}.exr``, 6); None when ``name`` is no pattern."""
    m = _PRINTF.search(name)
    if m:
        return name[:m.start()] + "{}" + name[m.end():], int(m.group(1))
    found = list(_HASHES.finditer(name))
    if found:
        m2 = found[-1]
        return name[:m2.start()] + "{}" + name[m2.end():], len(m2.group(0))
    return None


def check_size(codec: str, width: int, height: int) -> None:
    """Refuse a picture size the codec cannot encode (before any work), naming what it needs."""
    spec = CODECS[codec]
    if width < spec.min_size[0] or height < spec.min_size[1]:
        raise ConfigError(f"{codec} needs pictures of at least {spec.min_size[0]}x{spec.min_size[1]}, "
                          f"this one is {width}x{height}")
    if spec.even and (width % 2 or height % 2) and codec != "h264":
        raise ConfigError(f"{codec} needs an even width and height, this picture is {width}x{height}")


def supported() -> str:
    """One line of what can be written (for ``--help`` and errors)."""
    codecs = ", ".join(f"{n} ({'/'.join(c.containers)})" for n, c in CODECS.items())
    return f"codecs {codecs}; image sequences {', '.join(sorted(set(SEQUENCES)))} as NAME.%06d.EXT or NAME.####.EXT"


def output_spec(path: Path, codec: str | None = None) -> OutputSpec:
    """What ``path`` (and ``--codec``) ask for, checked before any work: :class:`ConfigError` naming what
    is supported otherwise."""
    seq = sequence_pattern(path.name)
    suffix = path.suffix.lower()
    if seq is not None:
        if suffix not in SEQUENCES:
            raise ConfigError(f"{path}: image sequences are written as {', '.join(sorted(set(SEQUENCES)))}, "
                              f"not {suffix or 'no extension'}")
        if codec is not None:
            raise ConfigError(f"{path}: --codec is for video files; an image sequence's format is its extension")
        return OutputSpec(path, None, seq[0], seq[1], suffix)
    if codec is None:
        codec = DEFAULT_CODEC.get(suffix)
        if codec is None:
            raise ConfigError(f"{path}: cannot write {suffix or 'a file without an extension'}; {supported()}")
    spec = CODECS.get(codec)
    if spec is None:
        raise ConfigError(f"unknown --codec {codec!r}; {supported()}")
    if suffix not in spec.containers:
        raise ConfigError(f"{path}: --codec {codec} goes in {', '.join(spec.containers)}, not {suffix}")
    return OutputSpec(path, codec, None, 0, suffix)
