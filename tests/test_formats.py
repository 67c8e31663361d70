"""Delivery formats (issue 14): every codec and image-sequence format round-trips frame count, exact frame
rate, timecode, size, bit depth and colour tags; audio stays in sync; sequences keep 23.976."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from conftest import make_clip, noise_frames
from doppel.core.errors import ConfigError
from doppel.io.formats import CODECS, SEQUENCES, output_spec, parse_rate, sequence_pattern
from doppel.io.sequence import SequenceWriter
from doppel.io.video import Colour, probe, read_frames
from doppel.io.writer import VideoWriter

NTSC = Fraction(24000, 1001)
BT709 = Colour(primaries=1, transfer=1, matrix=1, range=1)


def _deep_frames(n: int, h: int = 144, w: int = 256) -> list[np.ndarray]:
    """Smooth 16-bit gradients (what 8 bits would band), moving a little from frame to frame."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    return [np.stack([(x / w * 0.8 + 0.1 + 0.002 * i), (y / h * 0.6 + 0.2), np.full_like(x, 0.45 + 0.003 * i)],
                     axis=-1).clip(0, 1).__mul__(65535).round().astype(np.uint16) for i in range(n)]


@pytest.mark.parametrize("text, rate", [("23.976", NTSC), ("24000/1001", NTSC), ("24", Fraction(24)),
                                        ("29.97", Fraction(30000, 1001)), ("59.94", Fraction(60000, 1001)),
                                        ("25", Fraction(25)), ("48", Fraction(48)), ("12.5", Fraction(25, 2))])
def test_frame_rates_are_exact(text: str, rate: Fraction) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("bad", ["0", "-24", "abc", "1/0", "5000"])
def test_bad_frame_rates_are_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match="fps"):
        parse_rate(bad)


def test_output_names_and_codecs_are_checked_before_any_work(tmp_path: Path) -> None:
    assert sequence_pattern("shot.%06d.exr") == ("shot.{}.exr", 6)
    assert sequence_pattern("shot.####.dpx") == ("shot.{}.dpx", 4)
    assert sequence_pattern("shot.mov") is None
    assert output_spec(tmp_path / "a.mov").codec == "h264" and output_spec(tmp_path / "a.mkv").codec == "ffv1"
    assert output_spec(tmp_path / "a.mov", "prores_4444").codec == "prores_4444"
    seq = output_spec(tmp_path / "out" / "shot.####.exr")
    assert seq.is_sequence and seq.frame_path(1001).name == "shot.1001.exr"
    for path, codec, words in [("a.mp4", "prores_hq", "goes in .mov"), ("a.avi", None, "cannot write .avi"),
                               ("a.mov", "vp9", "unknown --codec"), ("s.%04d.jpg", None, "image sequences"),
                               ("s.%04d.exr", "h264", "--codec is for video")]:
        with pytest.raises(ConfigError, match=words):
            output_spec(tmp_path / path, codec)


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_each_codec_round_trips_timing_timecode_depth_and_colour(codec: str, tmp_path: Path) -> None:
    spec = CODECS[codec]
    source = make_clip(tmp_path / "src.mp4", noise_frames(12, 144, 256), fps=24)  # audio to carry across
    out = tmp_path / f"out{spec.containers[0] if codec != 'h264' else '.mov'}"
    frames = _deep_frames(12)
    with VideoWriter(out, width=256, height=144, fps=NTSC, codec=codec, colour=BT709, timecode="01:00:00:00",
                     audio_from=source, crf=10) as writer:
        for f in frames:
            writer.write(f)
    info = probe(out)
    assert (info.frame_count, info.width, info.height) == (12, 256, 144)
    assert info.rate == NTSC and info.timecode in ("01:00:00:00", "01:00:00;00")
    assert info.bits >= spec.bits
    assert (info.colour.matrix, info.colour.range) == (1, 1) and info.colour.primaries == 1
    assert info.has_audio
    decoded = list(read_frames(out, depth=16))
    back = [f.image16 if spec.bits > 8 else f.image.astype(np.uint16) * 257 for f in decoded]
    assert all(b is not None for b in back)  # deeper sources come back deep
    err = max(float(np.abs(b.astype(np.int64) - f).mean()) for b, f in zip(back, frames, strict=True))  # type: ignore[union-attr]
    # ffv1 is lossless; 10-bit codecs within a few 10-bit steps; 8-bit ones within a few 8-bit steps
    assert err < (1.0 if codec == "ffv1" else 300.0 if spec.bits > 8 else 900.0), err
    span = _spans(out)  # audio in sync: its first and last samples within a frame of the video's
    assert abs(span["audio"][0] - span["video"][0]) <= 1 / 23.976 + 0.025
    assert abs(span["audio"][1] - span["video"][1]) <= 1 / 23.976 + 0.025


def _spans(path: Path) -> dict[str, tuple[float, float]]:
    """(first, end) in seconds of each stream's packets: start of the first, end of the last."""
    out: dict[str, list[float]] = {}
    with av.open(str(path)) as c:
        for packet in c.demux():
            if packet.pts is None or packet.time_base is None:
                continue
            t0 = float(packet.pts * packet.time_base)
            t1 = t0 + float((packet.duration or 0) * packet.time_base)
            kind = packet.stream.type
            lo, hi = out.get(kind, [t0, t1])
            out[kind] = [min(lo, t0), max(hi, t1)]
    return {k: (v[0], v[1]) for k, v in out.items()}


@pytest.mark.parametrize("suffix", sorted(SEQUENCES))
def test_image_sequences_keep_23_976_numbering_and_depth(suffix: str, tmp_path: Path) -> None:
    spec = output_spec(tmp_path / "plate" / f"shot.%06d{suffix}")
    frames = _deep_frames(5)
    writer = SequenceWriter(spec, width=256, height=144, start=1001)
    for i, f in enumerate(frames):
        writer.write(f, i)
    assert writer.written[0].name == f"shot.001001{suffix}"
    info = probe(spec.path, fps="23.976")
    assert info.kind == "images" and info.frame_count == 5 and info.rate == NTSC and info.start_number == 1001
    assert info.bits == SEQUENCES[suffix].bits
    back = [f.image16 for f in read_frames(spec.path, depth=16, fps="23.976")]
    for b, f in zip(back, frames, strict=True):
        assert b is not None
        tol = 80 if suffix == ".dpx" else 128 if suffix == ".exr" else 0  # 10 bits; half floats; exact
        assert int(np.abs(b.astype(np.int64) - f).max()) <= tol
    assert [round(f.time * 24000 / 1001, 6) for f in read_frames(spec.path, fps="24000/1001")] == [0, 1, 2, 3, 4]
