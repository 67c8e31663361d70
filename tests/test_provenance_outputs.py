"""Nothing doppel writes carries a face it rendered without the mark (issue 14, item 2): the merged video,
every compositing layer (watermark and credentials in each face, a signed manifest over the folder), the
inference cache (encrypted), the review cache's sheets."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from doppel.provenance.manifest import MANIFEST_NAME
from doppel.provenance.verify import verify_file
from doppel.provenance.watermark import render_payload
from doppel.workflow.merge import MergeRequest, merge
from test_merge_helpers import ShiftSwapper, face_clip, setup_workspace


@pytest.fixture(scope="module")
def merged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("out")
    clip, marks = face_clip(root / "in.mp4", 12, absent=(3,), audio=False)
    with setup_workspace(root / "ws", clip, marks, frame_count=12) as ws:
        (root / "delivery").mkdir()
        report = merge(ws, MergeRequest(input=clip, output=root / "delivery" / "shot.mp4", model="m1",
                                        layers=root / "delivery" / "layers"), swapper=ShiftSwapper())
    return root, report.render_uid


def test_every_file_under_the_output_and_layers_carries_the_mark(merged: tuple[Path, str]) -> None:
    root, uid = merged
    files = [p for p in sorted((root / "delivery").rglob("*")) if p.is_file()]
    kinds = {p.name.split("_")[0] for p in files}
    assert {"face", "matte", "transform", "shot.mp4", MANIFEST_NAME} <= kinds, kinds
    for path in files:
        if path.suffix == ".c2pa" or path.name == MANIFEST_NAME:
            continue  # the credentials themselves
        report = verify_file(path, workspace=root / "ws")
        assert report.verdict == "marked", (path.name, report.findings)
        if path.name.startswith("face_"):
            assert report.watermark["detected"] and report.watermark["payload"] == render_payload(uid)
            assert report.credentials["valid"] and report.credentials["render_id"] == uid
        if path.suffix in (".png", ".json"):
            assert report.manifest["valid"] and report.manifest["intact"] and report.manifest["trusted"]


def test_a_changed_layer_no_longer_passes(merged: tuple[Path, str], tmp_path: Path) -> None:
    import shutil

    root, _ = merged
    copy = tmp_path / "layers"
    shutil.copytree(root / "delivery" / "layers", copy)
    target = sorted(copy.glob("transform_*.json"))[0]
    target.write_text(target.read_text().replace('"occlusion"', '"occlusion_"'))
    report = verify_file(target)
    assert report.verdict == "unmarked" and not report.manifest["intact"]
    assert report.exit_code == 1


def test_the_inference_cache_is_encrypted(merged: tuple[Path, str]) -> None:
    root, _ = merged
    entries = [p for p in (root / "ws" / "renders" / "cache").rglob("*.npy")]
    assert entries
    for p in entries[:3]:
        blob = p.read_bytes()
        assert not blob.startswith(b"\x93NUMPY")
        with pytest.raises(ValueError):
            np.load(io.BytesIO(blob), allow_pickle=False)
