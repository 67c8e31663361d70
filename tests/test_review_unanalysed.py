"""A render opened in review before it is analysed: its frames are served at once, from the media, while
the analysis runs in the background with its progress (frames done, frames/s, time left)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from doppel.io.video import read_frames
from test_merge_helpers import ShiftSwapper
from test_review_helpers import planted_render, wait_job


class GatedSwapper(ShiftSwapper):
    """Merge's test swapper that holds the analysis until the test opens the gate: the test then sees the
    page's state while the analysis is running, deterministically."""

    gate = threading.Event()

    def swap(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.gate.wait(timeout=120)
        return super().swap(faces)


@pytest.fixture
def unanalysed(tmp_path: Path) -> Any:
    from fastapi.testclient import TestClient

    from doppel.review.app import create_app
    from doppel.review.guard import new_token

    ws, report = planted_render(tmp_path, 30)
    ws.close()
    GatedSwapper.gate.clear()
    token = new_token()
    app = create_app(tmp_path / "ws", token, swapper_factory=GatedSwapper, identity_budget=10)
    client = TestClient(app, base_url="http://127.0.0.1:8765")
    yield client, {"X-Doppel-Token": token}, report, tmp_path
    GatedSwapper.gate.set()


def _jpeg(content: bytes) -> np.ndarray:
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(content, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def test_frames_are_shown_before_the_analysis_and_it_runs_once_with_progress(unanalysed: Any) -> None:
    client, h, report, root = unanalysed
    uid = report.render_uid
    d = client.get(f"/api/renders/{uid}", headers=h).json()
    assert not d["analysed"] and d["frames"] == 30 and (d["width"], d["height"]) == (240, 180)
    assert d["analysis"] is None
    merged = [f.image for f in read_frames(root / "out.mp4")]
    plate = [f.image for f in read_frames(root / "in.mp4")]
    for i in (3, 4, 21, 2):  # forward, then a jump back
        swapped = client.get(f"/api/renders/{uid}/frames/{i}/swapped.jpg", headers=h)
        original = client.get(f"/api/renders/{uid}/frames/{i}/original.jpg", headers=h)
        assert swapped.status_code == original.status_code == 200
        assert np.abs(_jpeg(swapped.content).astype(int) - merged[i]).mean() < 3
        assert np.abs(_jpeg(original.content).astype(int) - plate[i]).mean() < 3
    face = (slice(50, 130), slice(80, 160))  # the swap shows on the face (the segmenter keeps the rest the plate's)
    assert np.abs(merged[21][face].astype(int) - plate[21][face]).mean() > 3  # the two views are different frames
    diff = client.get(f"/api/renders/{uid}/frames/21/diff.jpg", headers=h)
    assert diff.status_code == 200 and _jpeg(diff.content).mean() > 2
    assert client.get(f"/api/renders/{uid}/frames/30/swapped.jpg", headers=h).status_code == 404
    info = client.get(f"/api/renders/{uid}/frames/21", headers=h).json()
    assert info["status"] == "swapped" and info["score"] is None and info["settings"]["colour"] == "rct"
    assert client.get(f"/api/renders/{uid}/frames/30", headers=h).status_code == 422
    # edits still need the analysis's measures
    assert client.post(f"/api/renders/{uid}/overrides", headers=h,
                       json={"first": 3, "settings": {"colour": "none"}}).status_code == 400

    first = client.post(f"/api/renders/{uid}/analyse", headers=h).json()
    again = client.post(f"/api/renders/{uid}/analyse", headers=h).json()
    assert again["id"] == first["id"]  # the page asking twice starts one analysis
    d = client.get(f"/api/renders/{uid}", headers=h).json()
    assert not d["analysed"] and d["analysis"]["id"] == first["id"] and d["analysis"]["status"] == "running"
    assert {"done", "total", "fps", "eta_s", "elapsed_s", "waiting"} <= set(d["analysis"])
    GatedSwapper.gate.set()
    job = wait_job(client, first, h["X-Doppel-Token"])
    assert job["status"] == "done" and job["fps"] > 0 and job["done"] == job["total"] == 30
    d = client.get(f"/api/renders/{uid}", headers=h).json()
    assert d["analysed"] and len(d["score"]) == 30
    third = client.post(f"/api/renders/{uid}/analyse", headers=h).json()
    assert third["id"] != first["id"]  # a finished analysis can be run again on purpose
    wait_job(client, third, h["X-Doppel-Token"])


def test_a_render_whose_output_is_gone_is_a_clear_error(unanalysed: Any) -> None:
    client, h, report, root = unanalysed
    (root / "out.mp4").unlink()
    r = client.get(f"/api/renders/{report.render_uid}", headers=h)
    assert r.status_code == 404 and "out.mp4 is missing" in r.json()["error"]
    assert client.get(f"/api/renders/{report.render_uid}/frames/0/swapped.jpg", headers=h).status_code == 404
