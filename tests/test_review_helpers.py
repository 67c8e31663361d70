"""Shared helpers for the review tests: a small merged render with planted glitches (no tests here).

The render is made by the real merge pipeline with merge's test-double swapper (``ShiftSwapper``:
a colour shift with a full mask), so no model is trained in the default test run.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from conftest import query, raw_db
from doppel.merge.pipeline import MergeReport
from doppel.ops.align import estimate_transform
from doppel.store import Workspace
from doppel.store.db import to_blob
from doppel.workflow.merge import MergeRequest, merge
from test_merge_helpers import ShiftSwapper, face_clip, setup_workspace

OCCLUDED = (20, 21, 22)  # a grey bar across the face in the clip
PERTURBED = (40, 41, 42)  # alignment landmarks shifted and rotated in the workspace
PLANTED = frozenset(OCCLUDED + PERTURBED)


def _occlude(path: Path, marks: dict[int, np.ndarray], frames: tuple[int, ...]) -> None:
    """Re-encode the clip with a grey bar over the lower face in ``frames``."""
    from conftest import make_clip
    from doppel.io.video import read_frames

    images = [f.image.copy() for f in read_frames(path)]
    for i in frames:
        lm = marks[i]
        (x0, y0), (x1, y1) = lm.min(0), lm.max(0)
        h = y1 - y0
        cv2.rectangle(images[i], (int(x0 - 4), int(y0 + 0.45 * h)), (int(x1 + 4), int(y0 + 0.8 * h)),
                      (128, 128, 128), -1)
    make_clip(path, images)


def _perturb(ws: Workspace, frames: tuple[int, ...]) -> None:
    """Shift and rotate the stored alignment of ``frames`` (what a bad landmark fit does)."""
    rows = query(ws, "SELECT id, frame_index, landmarks_smooth FROM faces").fetchall()
    with raw_db(ws) as c:
        for r in rows:
            if r["frame_index"] not in frames:
                continue
            lm = np.frombuffer(r["landmarks_smooth"], "<f4").reshape(-1, 2).astype(np.float64)
            centre = lm.mean(0)
            angle = np.deg2rad(14.0)
            rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
            size = float(np.ptp(lm[:, 0]))
            moved = (lm - centre) @ rot.T + centre + [0.14 * size, 0.10 * size]
            t = estimate_transform(moved, 256, "full")
            c.execute("UPDATE faces SET landmarks = ?, landmarks_smooth = ?, transform = ? WHERE id = ?",
                      (to_blob(moved), to_blob(moved), to_blob(t, "<f8"), r["id"]))


def planted_render(root: Path, n: int = 60, size: tuple[int, int] = (240, 180)) -> tuple[Workspace, MergeReport]:
    """A workspace under ``root`` with an ``n``-frame merged render whose :data:`PLANTED` frames are glitched."""
    root.mkdir(parents=True, exist_ok=True)
    clip, marks = face_clip(root / "in.mp4", n, size=size)
    _occlude(clip, marks, OCCLUDED)
    ws = setup_workspace(root / "ws", clip, marks, frame_count=n)
    _perturb(ws, PERTURBED)
    report = merge(ws, MergeRequest(input=clip, output=root / "out.mp4", model="m1"), swapper=ShiftSwapper())
    return ws, report


@dataclass
class Analysed:
    """A planted render analysed through the app: its workspace folder, uid, id, the app and a client."""

    root: Path
    uid: str
    render_id: int
    frames: int
    token: str
    app: Any
    client: Any
    glitches: list[Any]  # scores right after analysis, before any test edits the render


def wait_job(client: Any, job: dict[str, Any], token: str, timeout: float = 900.0) -> dict[str, Any]:
    deadline = time.time() + timeout
    while job["status"] == "running":
        assert time.time() < deadline, f"job {job} did not finish"
        time.sleep(0.05)
        job = client.get(f"/api/jobs/{job['id']}", headers={"X-Doppel-Token": token}).json()
    return job


def analysed_render(root: Path, n: int = 60) -> Analysed:
    """Merge a planted render and analyse it through the app's analyse endpoint."""
    from fastapi.testclient import TestClient

    from doppel.review.app import create_app
    from doppel.review.glitches import load_scores
    from doppel.review.guard import new_token

    ws, report = planted_render(root, n)
    ws.close()
    token = new_token()
    app = create_app(root / "ws", token, swapper_factory=ShiftSwapper, identity_budget=15)
    client = TestClient(app, base_url="http://127.0.0.1:8765")
    job = client.post(f"/api/renders/{report.render_uid}/analyse", headers={"X-Doppel-Token": token}).json()
    job = wait_job(client, job, token)
    assert job["status"] == "done", job
    with Workspace.open(root / "ws") as ws2:
        scores = load_scores(ws2, report.render_id)
    return Analysed(root, report.render_uid, report.render_id, n, token, app, client, scores)


@pytest.fixture(scope="session")
def review_render(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Analysed]:
    """One analysed 60-frame planted render shared by the review tests (API tests edit it: they run after
    anything that reads the untouched scores, which are captured in ``glitches``)."""
    global _SHARED
    if _SHARED is None:  # one per session even though several test modules import this fixture
        _SHARED = analysed_render(tmp_path_factory.mktemp("review"))
    yield _SHARED


_SHARED: Analysed | None = None
