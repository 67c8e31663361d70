"""Review on a real render: a tiny model trained with `doppel train`, merged with `doppel merge` (no test
double anywhere), scored with `doppel glitches`, then edited, re-rendered and exported through the app,
which loads the model itself. Slow (training and on-the-fly extraction): run with ``-m slow``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from conftest import make_clip
from doppel.cli.app import app
from doppel.io.video import probe
from doppel.review.app import create_app
from doppel.review.guard import new_token

# A 20-step model at the cpu preset's own rate (far from converged): its learned mask sits near one half
# everywhere, so the matte never passes one half. Review once took the face region at one half, found no
# region on any frame, and ranked the occluded frames on identity alone (failing about one run in three).
# Review now takes it at half the frame's own peak: the bar merge keeps on top of the swap shows as a mask
# change (scores 5.3-6.1 against <= 4.5 for any other frame in 3 runs of 3).
TINY = ["--resolution", "64", "--e-dims", "8", "--ae-dims", "16", "--d-dims", "8", "--d-mask-dims", "4",
        "--batch", "2", "--workers", "0"]
OCCLUDED = (12, 13, 14)


def _cli(*args: object) -> dict:
    res = CliRunner().invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


@pytest.mark.slow
def test_real_model_render_review_round_trip(tmp_path: Path) -> None:
    import facefixtures

    ws_root = tmp_path / "ws"
    facefixtures.make_workspace(ws_root, n=8, size=64).close()
    _cli("train", ws_root, "--src", "astronaut", "--dst", "hopper", "--model", "m", *TINY, "--iters", "20", "--json")
    frames = []
    for i, (img, lm) in enumerate(facefixtures.jittered_frames("hopper", 24, seed=3)):
        img = cv2.resize(img, (img.shape[1] // 2 // 2 * 2, img.shape[0] // 2 // 2 * 2))
        if i in OCCLUDED:
            (x0, y0), (x1, y1) = (lm.min(0) / 2).astype(int), (lm.max(0) / 2).astype(int)
            cv2.rectangle(img, (x0 - 4, (y0 + y1) // 2), (x1 + 4, y1 - (y1 - y0) // 8), (120, 120, 120), -1)
        frames.append(np.ascontiguousarray(img))
    clip = make_clip(tmp_path / "hopper.mp4", frames)
    out = tmp_path / "out.mp4"
    merged = _cli("merge", ws_root, clip, "--model", "m", "--output", out, "--json")
    uid = merged["render_uid"]
    ranked = _cli("glitches", ws_root, uid, "--top", "5", "--json")
    assert ranked["frames"] == 24 and len(ranked["glitches"]) == 5
    top = {g["frame"] for g in ranked["glitches"]}
    print(f"\nreal model: top frames {[(g['frame'], g['score']) for g in ranked['glitches']]}")
    assert len(top & set(OCCLUDED)) >= 2, "the occluded frames are not among the top five"

    token = new_token()
    client = TestClient(create_app(ws_root, token), base_url="http://127.0.0.1:8765")
    h = {"X-Doppel-Token": token}
    before = client.get(f"/api/renders/{uid}/frames/5/swapped.jpg", headers=h).content
    r = client.post(f"/api/renders/{uid}/overrides", json={"first": 5, "settings": {"colour": "none", "mask_blur": 40}},
                    headers=h)
    assert r.status_code == 200 and r.json()["dirty"] == 1
    job = client.post(f"/api/renders/{uid}/rerender", json={}, headers=h).json()
    while job["status"] == "running":
        time.sleep(0.1)
        job = client.get(f"/api/jobs/{job['id']}", headers=h).json()
    assert job["status"] == "done" and job["result"]["frames"] == [5], job
    assert client.get(f"/api/renders/{uid}/frames/5/swapped.jpg", headers=h).content != before
    job = client.post(f"/api/renders/{uid}/export", headers=h).json()
    while job["status"] == "running":
        time.sleep(0.1)
        job = client.get(f"/api/jobs/{job['id']}", headers=h).json()
    assert job["status"] == "done", job
    assert probe(out).frame_count == 24 and job["result"]["provenance"]
