"""Extraction on real footage (../shared/media): face-found rate, jitter and lag bars of issue 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import shared_clip
from doppel.extract.metrics import smoothing_report
from doppel.workflow.extract import extract as extract_clip
from doppel.workflow.workspace import create_workspace

pytestmark = [pytest.mark.media, pytest.mark.slow]


@pytest.mark.parametrize("name", ["lp_d18_man_neutral_studio.mp4", "lp_d3_woman_expressions.mp4",
                                  "lp_d12_man_talking_gesturing.mp4"])
def test_real_clip_found_smoothed_without_lag(name: str, tmp_path: Path) -> None:
    clip = shared_clip(name)
    with create_workspace(tmp_path / "ws") as ws:
        report = extract_clip(ws, "p", clip)
        recs = ws.faces.of("p")
        assert report.frames_with_face >= 0.98 * report.frames  # the person is visible throughout
        rep = smoothing_report(np.array([f.frame_index for f in recs]),
                               np.stack([f.landmarks for f in recs]).astype(np.float64),
                               np.stack([f.landmarks_smooth for f in recs]).astype(np.float64),
                               np.stack([f.transform for f in recs]))
        assert rep["ratio"] <= 0.5, rep
        assert abs(rep["lag_frames"]) <= 1.0, rep
