"""The synthetic demo clips: exact known motion, audio, and a face where the motion says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from doppel.demo.media import Motion, make_demo_clip, portrait, synth_frames, write_clip
from doppel.io.video import probe, read_frames


def test_portraits_are_shipped_images() -> None:
    assert portrait("astronaut").shape == (512, 512, 3)
    assert portrait("grace_hopper").dtype == np.uint8
    with pytest.raises(ValueError, match="unknown portrait"):
        portrait("mona_lisa")  # type: ignore[arg-type]


def test_motion_is_known_and_smooth() -> None:
    clip = synth_frames("astronaut", 12, 160, 120, absent=(5, 7))
    assert len(clip.frames) == 12 and clip.frames[0].shape == (120, 160, 3)
    assert clip.transforms.shape == (12, 2, 3) and clip.present.tolist() == [i not in (5, 6) for i in range(12)]
    pts = clip.true_points(np.array([[223.0, 127.0]]))[:, 0]
    assert np.all(np.linalg.norm(np.diff(pts, axis=0), axis=1) < 6)  # smooth: a few px per frame
    assert np.ptp(pts[:, 0]) > 2  # but moving
    still = synth_frames("astronaut", 3, 160, 120, motion=Motion(0, 0, 0, 0))
    assert np.allclose(still.transforms[0], still.transforms[2])


def test_written_clip_has_video_and_audio(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "c.mp4", synth_frames("grace_hopper", 10, 160, 120), fps=25)
    info = probe(path)
    assert info.frame_count == 10 and info.has_audio and (info.width, info.height) == (160, 120)
    first = next(iter(read_frames(path)))
    assert first.image.shape == (120, 160, 3)
    demo = make_demo_clip(tmp_path / "demo.mp4", seconds=0.4, width=320, height=180)
    assert probe(demo).frame_count == 10 and probe(demo).has_audio
