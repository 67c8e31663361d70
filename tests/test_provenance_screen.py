"""Explicit-content screening: sampling, refusal through a fake screen, and the real detector on benign input."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from doppel.core.errors import ConfigError, RefusedError
from doppel.provenance.screen import FRAME_THRESHOLD, ClipScreener


class FakeScreen:
    """Scores a frame by its mean brightness: bright frames are 'explicit'."""

    def __init__(self) -> None:
        self.calls = 0

    def score(self, image: np.ndarray) -> float:
        self.calls += 1
        return 0.93 if image.mean() > 128 else 0.02


def _run(screener: ClipScreener, n: int, fps: float, bright: set[int]) -> None:
    for i in range(n):
        if screener.wants(i, i / fps):
            value = 200 if i in bright else 10
            screener.feed(i, np.full((16, 16, 3), value, np.uint8))


def test_refusal_names_clip_frames_and_scores() -> None:
    fake = FakeScreen()
    s = ClipScreener(Path("holiday.mp4"), screen=fake, every_seconds=1.0)
    _run(s, 100, 25.0, bright={50, 75})
    assert fake.calls == 4  # frames 0, 25, 50, 75
    with pytest.raises(RefusedError) as info:
        s.finish()
    msg = info.value.message
    assert msg.startswith("holiday.mp4: refused")
    assert "frame 50 (2.00 s) score 0.93" in msg and "frame 75 (3.00 s) score 0.93" in msg
    assert "2 of 4 sampled frames" in msg
    assert info.value.exit_code == 3


def test_benign_clip_passes() -> None:
    s = ClipScreener(Path("ok.mp4"), screen=FakeScreen(), every_seconds=0.5)
    _run(s, 50, 25.0, bright=set())
    report = s.finish()
    assert report.frames_checked == 4 and not report.refused and report.max_score < FRAME_THRESHOLD


def test_bad_interval() -> None:
    with pytest.raises(ConfigError):
        ClipScreener(Path("x.mp4"), screen=FakeScreen(), every_seconds=0)


@pytest.mark.skipif(importlib.util.find_spec("nudenet") is None, reason="nudenet not installed")
def test_nudenet_scores_benign_images_low() -> None:
    from doppel.provenance.screen import NudeNetScreen

    screen = NudeNetScreen()
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), np.full((300, 200, 3), (210, 160, 130), np.uint8)]
    for img in images:
        score = screen.score(img)
        assert 0.0 <= score < 0.2
