"""Joining H.264 chunks by stream copy (io.remux): timing kept exactly (variable frame rate included, where
B-frames date a chunk's first packets before the previous chunk's last), the source's audio carried over
unchanged, and chunks that cannot be joined refused in one line."""

from __future__ import annotations

import itertools
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from conftest import make_clip, noise_frames
from doppel.core.errors import MediaError
from doppel.io.remux import join_video
from doppel.io.video import probe, read_frames
from doppel.io.writer import VideoWriter
from test_merge_pipeline import _packets


def _chunks(src: Path, folder: Path, cuts: list[int], *, size: tuple[int, int] = (128, 96)) -> list[Path]:
    info, frames = probe(src), list(read_frames(src))
    out = []
    for k, (a, b) in enumerate(itertools.pairwise(cuts)):
        path = folder / f"c{k}.mp4"
        with VideoWriter(path, width=size[0], height=size[1], fps=info.fps, time_base=info.time_base, crf=0) as w:
            for f in frames[a:b]:
                w.write(np.ascontiguousarray(f.image[:size[1], :size[0]]), f.pts)
        out.append(path)
    return out


@pytest.mark.parametrize("vfr", [False, True])
def test_joined_chunks_keep_every_frame_its_time_and_the_audio(tmp_path: Path, vfr: bool) -> None:
    n = 40
    pts = list(np.cumsum(np.random.default_rng(1).choice([1, 1, 2, 5], n)) * 100) if vfr else None
    src = make_clip(tmp_path / "src.mp4", noise_frames(n), pts=[int(p) for p in pts] if pts else None,
                    time_base=Fraction(1, 2500) if vfr else None)
    joined = tmp_path / "joined.mp4"
    assert join_video(_chunks(src, tmp_path, [0, 7, 9, 25, n]), joined, audio_from=src) == n
    assert [f.time for f in read_frames(joined)] == [f.time for f in read_frames(src)]
    assert probe(joined).frame_count == n and probe(joined).variable_frame_rate == vfr
    assert _packets(joined, "audio") == _packets(src, "audio")
    (tmp_path / "whole").mkdir()
    whole = list(read_frames(_chunks(src, tmp_path / "whole", [0, n])[0]))
    for f in read_frames(joined):  # lossless encodes: the pictures of one encode of the whole clip
        assert np.array_equal(f.image, whole[f.index].image)


def test_chunks_that_cannot_be_joined_by_stream_copy_are_refused(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "src.mp4", noise_frames(20), audio=False)
    a, b = _chunks(src, tmp_path, [0, 10, 20])
    with pytest.raises(MediaError, match="chunks must be in order"):
        join_video([b, a], tmp_path / "j1.mp4")
    (tmp_path / "small").mkdir()
    (other,) = _chunks(src, tmp_path / "small", [10, 20], size=(64, 48))
    with pytest.raises(MediaError, match="other codec parameters"):
        join_video([a, other], tmp_path / "j2.mp4")
    with pytest.raises(MediaError, match="no chunks"):
        join_video([], tmp_path / "j3.mp4")
