"""Extraction on real footage (../shared/media): face-found rate, jitter and lag bars of issue 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import shared_clip
from doppel.extract.metrics import smoothing_report
from doppel.extract.pipeline import extract_clip
from doppel.faceset.query import faces
from doppel.faceset.workspace import Workspace

pytestmark = [pytest.mark.media, pytest.mark.slow]


@pytest.mark.parametrize("name", ["lp_d18_man_neutral_studio.mp4", "lp_d3_woman_expressions.mp4",
                                  "lp_d12_man_talking_gesturing.mp4"])
def test_real_clip_found_smoothed_without_lag(name: str, tmp_path: Path) -> None:
    clip = shared_clip(name)
    with Workspace.init(tmp_path / "ws") as ws:
        report = extract_clip(ws, "p", clip)
        recs = faces(ws, "p")
        assert report.frames_with_face >= 0.98 * report.frames  # the person is visible throughout
        rep = smoothing_report(np.array([f.frame_index for f in recs]),
                               np.stack([f.landmarks for f in recs]).astype(np.float64),
                               np.stack([f.landmarks_smooth for f in recs]).astype(np.float64),
                               np.stack([f.transform for f in recs]))
        assert rep["ratio"] <= 0.5, rep
        assert abs(rep["lag_frames"]) <= 1.0, rep
