"""Merge with the face segmenter: occluders stay on top of the swap, glasses follow the setting, the
visible mask is smoothed only where the plate is still, and the workspace's segmenter is preferred."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from doppel.io.video import read_frames
from doppel.merge.composite import TemporalState, Visible, blend_into, prepare_face
from doppel.merge.settings import MergeSettings
from doppel.merge.temporal import VisibleSmoother
from doppel.ops.align import estimate_transform, transform_points, warp_to_face
from doppel.segment import store
from doppel.segment.segmenter import Masks
from doppel.segment.unet import UNetConfig
from doppel.workflow import merge as workflow_merge
from doppel.workflow.merge import MergeRequest, merge
from doppel.workflow.segment import segmenter_dir, segmenter_for
from test_merge_helpers import ShiftSwapper, draw_face, face_clip, mean_shape, setup_workspace

BLUE = (20, 40, 250)  # the occluder: a "hand" the stand-in segmenter recognises by colour
ORANGE = (250, 120, 10)  # the glasses


class ColourSegmenter:
    """A stand-in for the trained segmenter (tests only): blue pixels are an occluder, orange ones glasses,
    everything else visible face."""

    size = 64
    face_type = "whole"
    source = "test"

    def crop_of(self, frame: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m = estimate_transform(landmarks, self.size, "whole")
        return warp_to_face(frame, m, self.size), m

    def predict(self, crops: np.ndarray) -> Masks:
        c = crops.astype(np.float32)
        blue = (c[..., 2] > 180) & (c[..., 0] < 90)
        orange = (c[..., 0] > 180) & (c[..., 2] < 90)
        return Masks((~blue & ~orange).astype(np.float32), orange.astype(np.float32))


def _frame_with_occluder(glasses: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    h, w = 120, 160
    frame = np.full((h, w, 3), 90, np.uint8)
    lm = (mean_shape() - 0.5) * (h * 0.55) + np.array([w * 0.5, h * 0.48])
    draw_face(frame, lm)
    occ = np.zeros((h, w), np.uint8)
    cv2.rectangle(occ, (70, 70), (95, 90), 1, -1)  # over the mouth
    frame[occ > 0] = BLUE
    if glasses:
        cv2.line(frame, (50, 52), (110, 52), ORANGE, 3)
    return frame, lm, occ.astype(bool)


def _composite(frame: np.ndarray, lm: np.ndarray, settings: MergeSettings) -> np.ndarray:
    seg = ColourSegmenter()
    res = 64
    matrix = estimate_transform(lm, res, "full")
    plate = warp_to_face(frame, matrix, res).astype(np.float32) / 255
    swapped = np.ascontiguousarray(plate[..., ::-1])  # red and blue swapped: easy to tell apart
    crop, seg_m = seg.crop_of(frame, lm)
    masks = seg.predict(crop[None])
    from doppel.segment.crops import to_crop

    visible = Visible(to_crop(masks.face[0], seg_m, matrix, res),
                      to_crop(masks.glasses[0], seg_m, matrix, res, outside=0))
    result = prepare_face(frame, matrix, swapped, np.ones((res, res), np.float32), transform_points(lm, matrix), 0.9,
                          settings, TemporalState(), visible)
    return blend_into(frame, result, settings)


def test_occluder_stays_on_top_and_the_rest_is_swapped() -> None:
    frame, lm, occ = _frame_with_occluder()
    out = _composite(frame, lm, MergeSettings(colour="none"))
    inner = cv2.erode(occ.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    assert np.abs(out[inner].astype(int) - frame[inner]).max() <= 2  # the occluder is untouched
    cheeks = np.zeros_like(occ)
    cv2.circle(cheeks, (60, 62), 5, 1, -1)
    assert np.abs(out[cheeks].astype(int) - frame[cheeks]).mean() > 20  # the face around it is swapped
    old = _composite(frame, lm, MergeSettings(colour="none", occlusion="off"))
    assert np.abs(old[inner].astype(int) - frame[inner]).mean() > 50  # without it, the swap paints over


@pytest.mark.parametrize(("mode", "kept"), [("plate", True), ("source", False)])
def test_glasses_setting(mode: str, kept: bool) -> None:
    frame, lm, _ = _frame_with_occluder(glasses=True)
    out = _composite(frame, lm, MergeSettings(colour="none", glasses=mode))  # type: ignore[arg-type]
    bar = np.zeros(frame.shape[:2], bool)
    bar[52, 60:100] = True
    same = np.abs(out[bar].astype(int) - frame[bar]).max(1) <= 3
    assert same.mean() > 0.9 if kept else same.mean() < 0.3


def test_occluder_margin_pulls_the_swap_back_from_an_occluder_edge() -> None:
    """``occluder_margin`` (px at 256) erodes what the swap may cover by that many pixels at the crop's size,
    sure and unsure parts alike; 0 leaves it as the segmenter saw it."""
    face = np.ones((128, 128), np.float32)
    face[60:, 40:80] = 0.0  # a hand from below
    vis = Visible(face, np.zeros_like(face))
    assert np.array_equal(vis.keep("plate", 0), vis.keep("plate"))
    kept = vis.keep("plate", 4)  # 2 px at 128
    assert kept[57, 60] == 1.0 and kept[58, 60] == 0.0 and kept[70, 37] == 1.0 and kept[70, 38] == 0.0
    assert (kept <= vis.keep("plate")).all()
    assert MergeSettings().occluder_margin == 2


def test_visible_mask_smooths_where_still_and_follows_motion_at_once() -> None:
    sm = VisibleSmoother()
    plate = np.full((16, 16, 3), 0.5, np.float32)
    a, b = np.ones((16, 16), np.float32), np.zeros((16, 16), np.float32)
    sm.update(a, plate, 0.5)
    still = sm.update(b, plate, 0.5)
    assert np.allclose(still, 0.5)  # a flicker on a still plate is halved
    sm.reset()
    sm.update(a, plate, 0.5)
    moved = plate.copy()
    moved[:8] = 0.0  # something arrived in the top half
    out = sm.update(b, moved, 0.5)
    assert out[:6].max() < 0.01 and out[12:].min() > 0.45


def test_merge_keeps_a_moving_occluder_on_top(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    n = 16
    clip_plain, marks = face_clip(tmp_path / "plain.mp4", n, size=(160, 120))
    frames = []
    boxes: dict[int, tuple[int, int]] = {}
    for f in read_frames(clip_plain):
        img = f.image.copy()
        if 4 <= f.index < 12:
            x = 50 + 4 * (f.index - 4)
            cv2.rectangle(img, (x, 66), (x + 20, 84), BLUE, -1)
            boxes[f.index] = (x, 66)
        frames.append(img)
    from conftest import make_clip

    clip = make_clip(tmp_path / "occluded.mp4", frames)
    ws = setup_workspace(tmp_path / "ws", clip, marks, frame_count=n)
    monkeypatch.setattr(workflow_merge, "segmenter_for", lambda ws: ColourSegmenter())
    out = tmp_path / "out.mp4"
    report = merge(ws, MergeRequest(input=clip, output=out, model="m1", settings=MergeSettings(colour="none")),
                   swapper=ShiftSwapper())
    assert report.swapped == n and "segment" in report.stages
    merged = {f.index: f.image for f in read_frames(out)}
    for i, (x, y) in boxes.items():
        box = merged[i][y + 4:y + 15, x + 4:x + 17].astype(float)
        assert box[..., 2].mean() > 180 and box[..., 0].mean() < 90, f"frame {i}: the occluder was painted over"
    assert len(set(report.occluded_frames) & set(boxes)) >= 5
    assert not set(report.occluded_frames) & {0, 1, 14, 15}
    ws.close()


def test_workspace_segmenter_is_preferred(tmp_path: Path) -> None:
    clip, marks = face_clip(tmp_path / "c.mp4", 4)
    ws = setup_workspace(tmp_path / "ws", clip, marks, frame_count=4)
    assert segmenter_for(ws).source == "base"
    store.save(segmenter_dir(ws), store.fresh(UNetConfig(size=64, widths=(8, 8, 16, 16), head=4)), {})
    found = segmenter_for(ws)
    assert found.source == str(segmenter_dir(ws)) and found.size == 64
    ws.close()


def test_cartoon_face_through_the_base_segmenter() -> None:
    """The shipped segmenter keeps most of a plain, unoccluded face (even a drawn one) for the swap."""
    from doppel.segment.segmenter import load_segmenter

    seg = load_segmenter(None)
    frame = np.full((160, 160, 3), 70, np.uint8)
    lm = (mean_shape() - 0.5) * 90 + 80
    draw_face(frame, lm)
    crop, m = seg.crop_of(frame, lm)
    from doppel.segment.labels import lifted_hull

    core = lifted_hull(transform_points(lm, m), seg.size, 0.0) > 0.5
    # 0.72 with the shipped weights (the average of three runs, better on real held-out faces than any one
    # run): the featureless middle of this drawn face (no nose) reads partly as a skin-toned occluder; run 3
    # alone kept 0.93. Below 0.7 the segmenter is eating plain faces (see the data card's limitations).
    assert seg.masks(crop[None])[0][core].mean() > 0.7
