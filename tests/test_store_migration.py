"""A workspace made by doppel before the store package (schema v1, built by commit 2c628d7: see
``fixtures/v1_workspace/make.py``) opens with today's code, keeps its rows, moves review's glitch
scores to their own table, and replays its render exactly as the old code did."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import cv2
import numpy as np
import pytest

from doppel.store import DB_NAME, Workspace
from doppel.store.schema import SCHEMA_VERSION
from doppel.workflow.replay import replay
from test_merge_helpers import ShiftSwapper

FIXTURE = Path(__file__).parent / "fixtures" / "v1_workspace"


@pytest.fixture
def old_workspace(tmp_path: Path) -> Path:
    root = tmp_path / "work"
    (root / "ws").mkdir(parents=True)
    for sub in ("facesets", "models/m1", "renders", "keys"):
        (root / "ws" / sub).mkdir(parents=True, exist_ok=True)
    (root / "ws" / "models" / "m1" / "config.json").write_text("{}")
    shutil.copy(FIXTURE / "in.mp4", root / "in.mp4")
    script = (FIXTURE / "doppel.sql").read_text().replace("@ROOT@", str(root.resolve()))
    conn = sqlite3.connect(root / "ws" / DB_NAME)
    conn.executescript(script)
    conn.close()
    return root


def _signature(rgb: np.ndarray) -> np.ndarray:
    return cv2.resize(rgb, (8, 8), interpolation=cv2.INTER_AREA).reshape(-1).astype(int)


def test_v1_workspace_opens_migrated_with_its_rows(old_workspace: Path) -> None:
    expected = json.loads((FIXTURE / "expected.json").read_text())
    conn = sqlite3.connect(old_workspace / "ws" / DB_NAME)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    conn.close()
    with Workspace.open(old_workspace / "ws") as ws:
        assert ws.schema_version == SCHEMA_VERSION
        assert ws.identities.names() == ["alice", "bob"]
        render = ws.renders.get(expected["render_uid"])
        assert render.status == "done" and render.settings["colour"] == "rct" and render.settings["mask_erode"] == 4
        assert [(o.first, o.last, o.changes) for o in ws.renders.overrides(render.id)] == [
            (10, 12, {"keep_original": True}), (2, 3, {"mask_blur": 4})]
        assert len(ws.renders.frames(render.id)) == 16
        scores = ws.scores.of(render.id)
        assert [[s.frame_index, s.score] for s in scores] == expected["scores"]
        assert scores[0].reasons[0]["reason"] == "colour" and scores[0].status is not None
        assert len(ws.faces.of("bob")) == 15
        assert [c.identity for c in ws.consents.of()] == ["alice"] and ws.consents.of()[0].intact()


def test_v1_render_replays_as_before(old_workspace: Path) -> None:
    expected = json.loads((FIXTURE / "expected.json").read_text())
    with Workspace.open(old_workspace / "ws") as ws:
        render = ws.renders.get(expected["render_uid"])
        frames = {f.index: f.output for f in replay(ws, render.id, swapper=ShiftSwapper())}
    assert sorted(frames) == sorted(int(i) for i in expected["frames"])
    for i, old in expected["frames"].items():
        new = frames[int(i)]
        # Bit-exact on the machine that made the fixture; elsewhere a library may round one level apart.
        if hashlib.sha256(new.tobytes()).hexdigest() != old["sha256"]:
            assert np.abs(_signature(new) - np.asarray(old["signature"])).max() <= 2, f"frame {i}"
