"""Short gaps in the destination's faces are bridged (an occluder hid the face from the detector), long or
jumping ones are not."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from doppel.merge.bridge import BRIDGED_SCORE, bridged
from doppel.ops.align import estimate_transform, transform_points
from doppel.store.records import FaceRecord
from test_merge_helpers import mean_shape


def _face(i: int, shift: float = 0.0, scale: float = 1.0, fps: float = 25.0) -> FaceRecord:
    lm = ((mean_shape() - 0.5) * 100 * scale + 200 + shift).astype(np.float32)
    return FaceRecord(id=i + 1, identity="dst", clip_id=1, frame_index=i, time=i / fps, track_id=1,
                      bbox=np.array([150, 150, 250, 250], np.float64), det_score=1.0, landmarks=lm,
                      landmarks_smooth=lm, landmark_score=0.9, yaw=0.0, pitch=0.0, roll=0.0, blur=100.0,
                      embedding=None, transform=estimate_transform(lm, 256, "full"), face_type="full", size=256,
                      aligned_path=Path("/nonexistent.png"), excluded=False, exclude_reason=None)


def test_a_short_gap_is_filled_with_interpolated_faces() -> None:
    faces = {i: _face(i, shift=2.0 * i) for i in (*range(5), *range(15, 20))}
    out = bridged(faces)
    assert sorted(out) == list(range(20))
    mid = out[10]
    assert mid.det_score == BRIDGED_SCORE and mid.id == 0 and mid.landmark_score is None
    t = (10 - 4) / (15 - 4)
    want = (1 - t) * faces[4].landmarks_smooth + t * faces[15].landmarks_smooth
    np.testing.assert_allclose(mid.landmarks_smooth, want, atol=1e-4)
    # its transform aligns its own landmarks the way the real faces' transforms align theirs
    np.testing.assert_allclose(transform_points(mid.landmarks_smooth, mid.transform),
                               transform_points(faces[4].landmarks_smooth, faces[4].transform), atol=0.5)
    assert all(out[i] is faces[i] for i in faces)


def test_long_or_jumping_gaps_are_left() -> None:
    long = {0: _face(0), 30: _face(30)}  # 1.2 s at 25 fps
    assert sorted(bridged(long)) == [0, 30]
    moved = {0: _face(0), 5: _face(5, shift=80.0)}  # another place: perhaps someone else
    assert sorted(bridged(moved)) == [0, 5]
    grown = {0: _face(0), 5: _face(5, scale=1.6)}
    assert sorted(bridged(grown)) == [0, 5]
    assert bridged({}) == {}


def test_merge_swaps_a_face_the_detector_missed_and_passes_a_missing_one_through(tmp_path: Path) -> None:
    """Frames 5-7 keep their face but extraction lost it (an occluder, say): merge bridges them and, since the
    segmenter sees a face there, swaps them; frames 15-17 have no face at all: bridged too, but the segmenter
    sees none, so they pass through as before. Without the segmenter nothing is bridged."""
    from doppel.merge.settings import MergeSettings
    from doppel.workflow.merge import MergeRequest, merge
    from test_merge_helpers import ShiftSwapper, face_clip, setup_workspace

    clip, marks = face_clip(tmp_path / "in.mp4", 24, absent=(15, 16, 17))
    missed = {i: lm for i, lm in marks.items() if i not in (5, 6, 7)}
    with setup_workspace(tmp_path / "ws", clip, missed, frame_count=24) as ws:
        report = merge(ws, MergeRequest(input=clip, output=tmp_path / "o.mp4", model="m1"), swapper=ShiftSwapper())
        assert (report.swapped, report.passthrough) == (21, 3)
        plain = merge(ws, MergeRequest(input=clip, output=tmp_path / "p.mp4", model="m1",
                                       settings=MergeSettings(occlusion="detect")), swapper=ShiftSwapper())
        assert (plain.swapped, plain.passthrough) == (18, 6)
