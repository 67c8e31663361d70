"""`doppel mask` (info, preview, train) with --json, and the artist's polygons as training labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from doppel.cli.app import app
from doppel.io.image import read_image
from doppel.merge.settings import MergeSettings
from doppel.ops.align import transform_points
from doppel.segment import store
from doppel.segment.unet import UNetConfig
from doppel.workflow.merge import MergeRequest, add_override, merge
from doppel.workflow.segment import polygon_samples, segmenter_dir
from facefixtures import make_workspace
from test_merge_helpers import ShiftSwapper, face_clip, setup_workspace

runner = CliRunner()


def _json(*args: str) -> dict:  # type: ignore[type-arg]
    result = runner.invoke(app, ["mask", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_info_preview_and_train(tmp_path: Path) -> None:
    make_workspace(tmp_path / "ws", n=6).close()
    ws = str(tmp_path / "ws")
    info = _json("info", ws)
    assert info["source"] == "base" and info["size"] % 16 == 0
    sheet = _json("preview", ws, "-i", "astronaut", "-o", str(tmp_path / "sheet.png"), "--count", "4")
    image = read_image(tmp_path / "sheet.png")
    assert sheet["segmenter"]["source"] == "base" and image.shape[1] == 4 * 2 * info["size"]
    report = _json("train", ws, "--steps", "2", "-i", "astronaut")
    assert report["identities"] == ["astronaut"] and report["faces"] == 6 and report["train"]["steps"] == 2
    assert store.is_segmenter(Path(report["folder"]))
    assert _json("info", ws)["source"] == "workspace"


def test_errors_are_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["mask", "info", str(tmp_path / "nope")])
    assert result.exit_code != 0 and "no such workspace" in result.output
    make_workspace(tmp_path / "ws", n=2).close()
    result = runner.invoke(app, ["mask", "preview", str(tmp_path / "ws"), "-i", "nobody", "-o",
                                 str(tmp_path / "s.png")])
    assert result.exit_code != 0 and "nobody" in result.output and len(result.output.strip().splitlines()) == 1


def test_review_polygons_become_labelled_samples(tmp_path: Path) -> None:
    clip, marks = face_clip(tmp_path / "c.mp4", 8)
    ws = setup_workspace(tmp_path / "ws", clip, marks, frame_count=8)
    report = merge(ws, MergeRequest(input=clip, output=tmp_path / "o.mp4", model="m1",
                                    settings=MergeSettings(occlusion="off")), swapper=ShiftSwapper())
    face = next(f for f in ws.faces.of("bob") if f.frame_index == 3)
    square = np.array([[70.0, 68.0], [90.0, 68.0], [90.0, 84.0], [70.0, 84.0]])  # frame pixels, over the mouth
    stored = (transform_points(square, face.transform) / face.size).round(5).tolist()  # as review stores it
    add_override(ws, report.render_id, 3, 7, {"mask_polygons": [{"mode": "exclude", "points": stored}]})
    config = UNetConfig(size=64)
    samples, frames = polygon_samples(ws, config)
    assert [(f.frame, f.polygons) for f in frames] == [(3, 1)]  # drawn on 3, carried to 4-7: one label
    s = samples[0]
    assert s.labelled and s.image.shape == (64, 64, 3)
    from doppel.segment.crops import to_segmenter_crop

    _, _, matrix = to_segmenter_crop(np.zeros((120, 160, 3), np.uint8), face.landmarks_smooth, 64, "whole")
    cx, cy = transform_points(square.mean(0, keepdims=True), matrix)[0]
    assert s.face[round(cy), round(cx)] == 0 and s.face_weight[round(cy), round(cx)] > 1
    assert not store.is_segmenter(segmenter_dir(ws))
    ws.close()
