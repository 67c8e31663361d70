"""Merging into delivery formats (issue 14): each output kind keeps frame count, exact rate and timecode,
carries the mark and signed credentials (embedded, sidecar or manifest), and a 10-bit plate stays 10-bit
through the composite."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from doppel.core.errors import ConfigError
from doppel.io.formats import output_spec
from doppel.io.sequence import SequenceWriter
from doppel.io.video import Colour, probe, read_frames
from doppel.io.writer import VideoWriter
from doppel.provenance.verify import verify_file
from doppel.workflow.merge import MergeRequest, merge
from test_merge_helpers import ShiftSwapper, face_clip, setup_workspace

NTSC = Fraction(24000, 1001)
N = 10


@pytest.fixture(scope="module")
def plate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[int, np.ndarray]]:
    """The synthetic face clip re-encoded as a 10-bit ProRes plate at 23.976 with a timecode and BT.709 tags."""
    root = tmp_path_factory.mktemp("plate")
    clip, marks = face_clip(root / "src.mp4", N, size=(256, 192), audio=True)
    out = root / "plate.mov"
    y, x = np.mgrid[0:192, 0:256]
    fine = ((x * 7 + y * 3) % 64).astype(np.uint16)  # sub-8-bit detail only a deep plate holds
    with VideoWriter(out, width=256, height=192, fps=NTSC, codec="prores_hq", timecode="00:59:59:12",
                     colour=Colour(1, 1, 1, 1), audio_from=clip) as w:
        for f in read_frames(clip):
            w.write((f.image.astype(np.uint16) * 257 + fine[..., None]).clip(0, 65535).astype(np.uint16))
    return out, marks


def _merge(tmp_path: Path, plate: tuple[Path, dict[int, np.ndarray]], output: str, **extra: object) -> Path:
    clip, marks = plate
    ws = setup_workspace(tmp_path / "ws", clip, marks, frame_count=N)
    with ws:
        merge(ws, MergeRequest(input=clip, output=tmp_path / output, model="m1", **extra),  # type: ignore[arg-type]
              swapper=ShiftSwapper())
    return tmp_path / output


@pytest.mark.parametrize("output, codec", [("shot.mov", "prores_hq"), ("shot.mkv", None), ("shot.mov", "h265_10bit"),
                                           ("shot.mxf", None)])
def test_video_outputs_keep_timing_timecode_and_carry_provenance(tmp_path: Path, plate: tuple, output: str,
                                                                 codec: str | None) -> None:
    out = _merge(tmp_path, plate, output, codec=codec)
    info, src = probe(out), probe(plate[0])
    assert (info.frame_count, info.rate, info.width, info.height) == (N, NTSC, 256, 192)
    assert info.timecode is not None and info.timecode.startswith("00:59:59")
    assert (info.colour.matrix, info.colour.range) == (src.colour.matrix, src.colour.range) == (1, 1)
    assert info.bits >= 10 and info.has_audio
    report = verify_file(out, workspace=tmp_path / "ws")
    assert report.verdict == "marked" and report.watermark["detected"], report.findings
    assert report.credentials.get("valid") or report.manifest.get("valid")


def test_a_10_bit_plate_stays_10_bit_outside_the_face(tmp_path: Path, plate: tuple) -> None:
    out = _merge(tmp_path, plate, "shot.mkv")  # FFV1: lossless, so what the composite wrote is what we read
    before = next(iter(read_frames(plate[0], depth=16))).image16
    after = next(iter(read_frames(out, depth=16))).image16
    assert before is not None and after is not None
    corner = (slice(0, 24), slice(0, 24))  # no face there: the plate plus the watermark's small change
    diff = after[corner].astype(np.int64) - before[corner].astype(np.int64)
    assert np.abs(diff).max() <= 257 * 4
    assert np.any(after[corner] % 257 != 0)  # not an 8-bit picture blown up to 16 bits


@pytest.mark.parametrize("suffix", [".exr", ".dpx", ".png", ".tif"])
def test_image_sequences_at_23_976_with_provenance_on_every_frame(tmp_path: Path, plate: tuple, suffix: str) -> None:
    out = _merge(tmp_path, plate, f"out/shot.%06d{suffix}", start_number=1001)
    frames = sorted((tmp_path / "out").glob(f"shot.*{suffix}"))
    assert [p.name for p in frames[:2]] == [f"shot.001001{suffix}", f"shot.001002{suffix}"] and len(frames) == N
    info = probe(out, fps="23.976")
    assert info.frame_count == N and info.rate == NTSC and info.start_number == 1001
    one = frames[N // 2]  # a single frame taken out of the sequence still says what it is
    report = verify_file(one, workspace=tmp_path / "ws")
    assert report.verdict == "marked" and report.watermark["detected"], report.findings
    assert report.manifest["valid"] and report.manifest["intact"]
    if suffix in (".png", ".tif"):
        assert report.credentials["valid"]


def test_a_sequence_input_is_read_at_the_rate_given(tmp_path: Path, plate: tuple) -> None:
    clip, marks = plate
    spec = output_spec(tmp_path / "in" / "plate.####.dpx")
    writer = SequenceWriter(spec, width=256, height=192, start=86400)
    for f in read_frames(clip, depth=16):
        writer.write(f.image16 if f.image16 is not None else f.image, f.index)
    ws = setup_workspace(tmp_path / "ws", spec.path, marks, frame_count=N)  # the faces of bob in the sequence
    with ws:
        merge(ws, MergeRequest(input=spec.path, output=tmp_path / "o" / "shot.####.dpx", model="m1", fps="24000/1001"),
              swapper=ShiftSwapper())
    info = probe(tmp_path / "o" / "shot.####.dpx", fps="24000/1001")
    assert info.frame_count == N and info.start_number == 86400 and info.bits == 10


def test_unsupported_combinations_fail_before_any_work(tmp_path: Path, plate: tuple) -> None:
    with pytest.raises(ConfigError, match="goes in .mov"):
        _merge(tmp_path, plate, "shot.mp4", codec="prores_hq")
    assert not (tmp_path / "shot.mp4").exists()


def test_verify_reads_a_whole_sequence(tmp_path: Path, plate: tuple) -> None:
    out = _merge(tmp_path, plate, "seq/shot.####.exr")
    for target in (out, tmp_path / "seq"):
        report = verify_file(target, workspace=tmp_path / "ws")
        assert report.verdict == "marked" and report.watermark["detected"], report.findings
        assert report.manifest["frames_covered"] == N
    frame = sorted((tmp_path / "seq").glob("*.exr"))[3]
    frame.write_bytes(frame.read_bytes()[:-10] + b"0123456789")  # a changed frame breaks the whole sequence
    assert verify_file(out).verdict == "unmarked"


def test_layers_as_a_prores_4444_video_with_alpha(tmp_path: Path, plate: tuple) -> None:
    import av

    _merge(tmp_path, plate, "shot.mov", layers=tmp_path / "faces.mov")
    info = probe(tmp_path / "faces.mov")
    assert info.frame_count == N and info.rate == NTSC and info.bits >= 10
    with av.open(str(tmp_path / "faces.mov")) as c:
        frame = next(c.decode(video=0))
        assert frame.format.name.startswith("yuva")
        rgba = frame.to_ndarray(format="rgba64le")
    alpha = rgba[..., 3]
    assert alpha.max() > 60000 and alpha[:8, :8].max() == 0  # the face is opaque, the corner transparent
    report = verify_file(tmp_path / "faces.mov", workspace=tmp_path / "ws")
    assert report.verdict == "marked" and report.watermark["detected"] and report.credentials["valid"]
