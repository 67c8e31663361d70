"""Review's "Retrain mask": polygons drawn in the app fine-tune the segmenter, then every swapped frame is
re-rendered with it (slow: it analyses a render of its own, since retraining changes the workspace)."""

from __future__ import annotations

from pathlib import Path

import pytest

from doppel.segment import store
from doppel.store import Workspace
from doppel.workflow.segment import segmenter_dir
from test_review_helpers import analysed_render, wait_job


@pytest.mark.slow
def test_retrain_mask_from_polygons(tmp_path: Path) -> None:
    a = analysed_render(tmp_path, n=24)
    c, h, uid = a.client, {"X-Doppel-Token": a.token}, a.uid
    box = [[100, 60], [140, 60], [140, 100], [100, 100]]
    r = c.post(f"/api/renders/{uid}/polygons", json={"frame": 6, "polygons": [{"mode": "exclude", "points": box}]},
               headers=h)
    assert r.status_code == 200, r.json()
    for bad in ({"minutes": "soon"}, {"minutes": 0}, {"minutes": True}):
        assert c.post(f"/api/renders/{uid}/retrain-mask", json=bad, headers=h).status_code == 422
    job = wait_job(c, c.post(f"/api/renders/{uid}/retrain-mask", json={"minutes": 0.05}, headers=h).json(), a.token)
    assert job["status"] == "done", job
    result = job["result"]
    assert [f["frame"] for f in result["segmenter"]["labelled_frames"]] == [6]
    assert sorted(result["frames"]) == list(range(a.frames))  # every frame has a face in this clip
    with Workspace.open(tmp_path / "ws") as ws:
        assert store.is_segmenter(segmenter_dir(ws))
    summary = c.get(f"/api/renders/{uid}", headers=h).json()
    assert summary["revision"] >= 2 and summary["dirty"] == 0
