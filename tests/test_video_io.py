from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from conftest import make_clip, noise_frames, shared_clip
from doppel.core.errors import InputError, MediaError
from doppel.io.image import read_image, write_image
from doppel.io.video import probe, read_frames
from doppel.io.writer import VideoWriter


def test_probe_counts_frames_and_audio(noface_clip: Path) -> None:
    info = probe(noface_clip)
    assert (info.kind, info.width, info.height, info.frame_count) == ("video", 128, 96, 20)
    assert info.has_audio and info.audio_codec == "aac"
    assert info.fps == pytest.approx(25.0)
    assert not info.variable_frame_rate


def test_read_exact_indices_and_every(noface_clip: Path) -> None:
    frames = list(read_frames(noface_clip))
    assert [f.index for f in frames] == list(range(20))
    assert [round(f.time * 25) for f in frames] == list(range(20))
    assert frames[0].image.shape == (96, 128, 3) and frames[0].image.dtype == np.uint8
    assert [f.index for f in read_frames(noface_clip, every=3, start=1)] == [1, 4, 7, 10, 13, 16, 19]


def test_variable_frame_rate_keeps_timestamps(tmp_path: Path) -> None:
    pts = [0, 40, 80, 200, 240, 400, 440, 480]  # milliseconds, irregular
    clip = make_clip(tmp_path / "vfr.mkv", noise_frames(len(pts)), pts=pts, time_base=Fraction(1, 1000),
                     audio=False)
    info = probe(clip)
    assert info.variable_frame_rate and info.frame_count == len(pts)
    times = [f.time for f in read_frames(clip)]
    assert times == pytest.approx([p / 1000 for p in pts], abs=1e-3)


def test_writer_roundtrip_keeps_timing_and_copies_audio(noface_clip: Path, tmp_path: Path) -> None:
    src = probe(noface_clip)
    out = tmp_path / "out.mp4"
    frames = list(read_frames(noface_clip))
    with VideoWriter(out, width=src.width, height=src.height, fps=src.fps, time_base=src.time_base,
                     audio_from=noface_clip) as writer:
        for f in frames:
            writer.write(f.image, f.pts)
    info = probe(out)
    assert (info.frame_count, info.width, info.height, info.has_audio) == (20, 128, 96, True)
    assert [f.time for f in read_frames(out)] == pytest.approx([f.time for f in frames], abs=1e-6)
    back = next(read_frames(out)).image.astype(int)
    assert np.abs(back - frames[0].image.astype(int)).mean() < 4  # CRF 18: near-lossless
    assert not list(tmp_path.glob(".out.*"))  # no temp file left


def test_writer_reencodes_audio_the_container_cannot_hold(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "pcm.mkv", noise_frames(10), audio_codec="pcm_s16le")
    assert probe(src).audio_codec == "pcm_s16le"
    out = tmp_path / "out.mp4"
    with VideoWriter(out, width=128, height=96, fps=25, audio_from=src) as writer:
        for f in read_frames(src):
            writer.write(f.image)
    info = probe(out)
    assert info.audio_codec == "aac" and info.frame_count == 10


def test_writer_failure_leaves_no_output(noface_clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError), VideoWriter(out, width=128, height=96, fps=25) as writer:
        writer.write(np.zeros((96, 128, 3), np.uint8))
        raise RuntimeError("crash mid-render")
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_image_sequence_and_still(tmp_path: Path) -> None:
    seq = tmp_path / "seq"
    for i, img in enumerate(noise_frames(12)):
        write_image(seq / f"f_{i}.png", img)
    info = probe(seq)
    assert (info.kind, info.frame_count) == ("images", 12)
    frames = list(read_frames(seq))
    assert [f.index for f in frames] == list(range(12))  # natural order: f_2 before f_10
    assert np.array_equal(frames[10].image, read_image(seq / "f_10.png"))
    assert probe(seq / "f_0.png").kind == "image"


def test_bad_inputs_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="missing.mp4: no such file"):
        probe(tmp_path / "missing.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 10)
    with pytest.raises(MediaError, match="junk.mp4"):
        probe(junk)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MediaError, match="empty: folder holds no images"):
        probe(empty)


def test_truncated_video_is_reported(noface_clip: Path, tmp_path: Path) -> None:
    data = noface_clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(MediaError, match="cut.mp4"):
        probe(cut)


@pytest.mark.media
def test_shared_clip_roundtrip_frame_count() -> None:
    clip = shared_clip("lp_d0_asian_man_greenscreen.mp4")
    info = probe(clip)
    assert info.frame_count == sum(1 for _ in read_frames(clip)) == 78
    assert not info.has_audio


def test_a_damaged_audio_stream_does_not_crash_the_probe(tmp_path: Path) -> None:
    """Found by tests/test_fuzz.py: bit flips that leave an audio stream without a decoder made probe()
    raise AttributeError; such a clip reads as having no (usable) audio."""
    clip = make_clip(tmp_path / "in.mp4", noise_frames(12, 48, 64))
    data = bytearray(clip.read_bytes())
    for pos in (237359997, 65665921, 413188634, 8429959, 105308855):
        data[pos % len(data)] ^= 1 << (pos % 8)
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    try:
        info = probe(damaged)
    except MediaError:
        return
    assert info.audio_codec is None or isinstance(info.audio_codec, str)
