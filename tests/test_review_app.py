"""The review app's HTTP API: the token guard, path safety, every endpoint, edits, re-render and export."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import query
from doppel.io.video import probe, read_frames
from doppel.provenance.watermark import detect, render_payload
from doppel.store import Workspace
from test_review_helpers import OCCLUDED, Analysed, review_render, wait_job  # noqa: F401

DB_MAGIC = b"SQLite format 3"


def _h(r: Analysed) -> dict[str, str]:
    return {"X-Doppel-Token": r.token}


def test_requests_without_the_token_are_refused(review_render: Analysed) -> None:  # noqa: F811
    from fastapi.testclient import TestClient

    c = TestClient(review_render.app, base_url="http://127.0.0.1:8765")
    uid = review_render.uid
    for path in ("/", "/static/app.js", "/api/renders", f"/api/renders/{uid}",
                 f"/api/renders/{uid}/frames/0/original.jpg", f"/api/renders/{uid}/sheets/0.jpg", "/api/jobs/1"):
        assert c.get(path).status_code == 401, path
        assert c.get(path, headers={"X-Doppel-Token": "wrong"}).status_code == 401, path
        assert c.get(path + ("&" if "?" in path else "?") + "token=nope").status_code == 401, path
    assert c.post(f"/api/renders/{uid}/overrides", json={"first": 0, "settings": {"colour": "none"}}).status_code == 401
    assert c.post(f"/api/renders/{uid}/export").status_code == 401


def test_token_by_header_query_or_cookie_and_changes_need_the_header(review_render: Analysed) -> None:  # noqa: F811
    from fastapi.testclient import TestClient

    c = TestClient(review_render.app, base_url="http://127.0.0.1:8765")
    first = c.get(f"/?token={review_render.token}")
    assert first.status_code == 200 and "doppel review" in first.text
    cookie = first.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert first.headers["content-security-policy"].startswith("default-src 'self'")
    assert "http://" not in first.text.replace("http://www.w3.org", "")  # nothing from elsewhere
    assert c.get("/api/renders").status_code == 200  # the cookie from the tokenised URL
    r = c.post(f"/api/renders/{review_render.uid}/overrides", json={"first": 0, "settings": {"colour": "none"}})
    assert r.status_code == 403 and "header" in r.json()["error"]  # a cookie alone changes nothing
    assert review_render.client.get("/api/renders", headers=_h(review_render)).status_code == 200


def test_other_host_names_are_refused(review_render: Analysed) -> None:  # noqa: F811
    r = review_render.client.get("/api/renders", headers={**_h(review_render), "Host": "evil.example:8765"})
    assert r.status_code == 403


@pytest.mark.parametrize("path", [
    "/static/..%2fapp.py", "/static/..%2f..%2f..%2fdoppel.db", "/static/%2e%2e%2f%2e%2e%2fdoppel.db",
    "/static/....//....//doppel.db", "/static/app.js%00.db",
    "/api/renders/..%2f..%2fdoppel.db/sheets/0.jpg", "/api/renders/..%2F..%2F/frames/0/original.jpg",
    "/api/renders/UID/frames/0/..%2f..%2f..%2f..%2fdoppel.db.jpg", "/api/renders/UID/frames/-1/original.jpg",
    "/api/renders/UID/sheets/..%2f..%2fmasks.jpg", "/api/renders/UID/frames/0/%2e%2e.jpg",
    "/api/renders/0123456789abcdef/frames/0/original.jpg", "/api/renders/%2e%2e/frames/0/original.jpg",
])
def test_no_file_outside_the_render_cache_is_served(review_render: Analysed, path: str) -> None:  # noqa: F811
    r = review_render.client.get(path.replace("UID", review_render.uid), headers=_h(review_render))
    assert r.status_code in (404, 422), (path, r.status_code)
    assert DB_MAGIC not in r.content and b"import " not in r.content


def test_render_listing_schema_and_summary(review_render: Analysed) -> None:  # noqa: F811
    c, h, uid = review_render.client, _h(review_render), review_render.uid
    renders = c.get("/api/renders", headers=h).json()
    assert [r["uid"] for r in renders] == [uid] and renders[0]["analysed"]
    s = c.get("/api/schema", headers=h).json()
    assert set(s["editable"]) == {"mask_erode", "mask_blur", "colour", "blend", "face_scale", "keep_original"}
    assert "mask_polygons" in s["schema"]["properties"] and "rct" in s["choices"]["colour"]
    d = c.get(f"/api/renders/{uid}", headers=h).json()
    assert d["frames"] == review_render.frames == len(d["score"]) == len(d["frame_status"])
    assert set(OCCLUDED) <= set(d["flagged"]) and d["dirty"] == 0 and d["sheets"] == 1 and not d["stale"]
    top = c.get(f"/api/renders/{uid}/glitches?top=4", headers=h).json()
    assert len(top) == 4 and top[0]["score"] >= top[-1]["score"] and top[0]["flagged"]
    assert c.get(f"/api/renders/{uid}/glitches?top=0", headers=h).status_code == 422
    assert c.get("/api/renders/abcdefabcdef0000", headers=h).status_code == 404


def test_frame_info_and_views(review_render: Analysed) -> None:  # noqa: F811
    c, h, uid = review_render.client, _h(review_render), review_render.uid
    info = c.get(f"/api/renders/{uid}/frames/21", headers=h).json()
    assert info["status"] == "swapped" and info["score"] >= 4 and info["reasons"]
    assert info["settings"]["colour"] == "rct" and info["polygons"] == []
    assert c.get(f"/api/renders/{uid}/frames/{review_render.frames}", headers=h).status_code == 422
    images = {}
    for view in ("original", "swapped", "mask", "diff"):
        r = c.get(f"/api/renders/{uid}/frames/21/{view}.jpg", headers=h)
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg", view
        images[view] = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR)
        assert images[view].shape == (180, 240, 3), view
    face = (slice(50, 130), slice(80, 160))  # the swap shows on the face (its occluding bar stays on top)
    assert np.abs(images["original"][face].astype(int) - images["swapped"][face].astype(int)).mean() > 3
    assert images["diff"].mean() > 2 and images["mask"].std() > 10
    assert c.get(f"/api/renders/{uid}/frames/21/depth.jpg", headers=h).status_code == 404
    sheet = c.get(f"/api/renders/{uid}/sheets/0.jpg", headers=h)
    assert sheet.status_code == 200 and sheet.content[:2] == b"\xff\xd8"
    assert c.get(f"/api/renders/{uid}/sheets/7.jpg", headers=h).status_code == 404


@pytest.mark.parametrize("body, message", [
    ({"first": 3, "settings": {"mask_blurr": 4}}, "unknown setting 'mask_blurr'"),
    ({"first": 3, "settings": {"mask_blur": 999}}, "mask_blur"),
    ({"first": 3, "settings": {"colour": "sepia"}}, "sepia"),
    ({"first": 3, "settings": {"face_scale": "big"}}, "face_scale"),
    ({"first": 5, "last": 2, "settings": {"colour": "none"}}, "frame range 5..2"),
    ({"first": 0, "last": 10_000, "settings": {"colour": "none"}}, "frame range 0..10000"),
    ({"first": 3, "settings": []}, "settings must be"),
    ({"first": 3, "settings": {}}, "settings must be"),
    ({"settings": {"colour": "none"}}, "needs integer 'first'"),
    ({"first": "x", "settings": {"colour": "none"}}, "needs integer 'first'"),
])
def test_invalid_overrides_are_refused(review_render: Analysed, body: dict, message: str) -> None:  # noqa: F811
    r = review_render.client.post(f"/api/renders/{review_render.uid}/overrides", json=body, headers=_h(review_render))
    assert r.status_code == 422 and message in r.json()["error"], r.json()
    with Workspace.open(review_render.root / "ws") as ws:
        assert ws.renders.overrides(review_render.render_id) == [] or all(
            o.first != 3 for o in ws.renders.overrides(review_render.render_id))


def test_invalid_polygons_are_refused(review_render: Analysed) -> None:  # noqa: F811
    c, h, uid = review_render.client, _h(review_render), review_render.uid
    bad = [
        ({"frame": 10, "polygons": [{"mode": "exclude", "points": [[1, 2], [3, 4]]}]}, 422),
        ({"frame": 10, "polygons": [{"mode": "erase", "points": [[1, 2], [3, 4], [5, 9]]}]}, 422),
        ({"frame": 10, "polygons": [{"mode": "include", "points": [[1, 2, 3], [3, 4, 5], [5, 9, 1]]}]}, 422),
        ({"frame": 10, "polygons": [{"mode": "include", "points": [[9e9, 2], [3, 4], [5, 9]]}]}, 422),
        ({"frame": 10, "polygons": "square"}, 422),
        ({"frame": 999, "polygons": []}, 422),
    ]
    for body, code in bad:
        r = c.post(f"/api/renders/{uid}/polygons", json=body, headers=h)
        assert r.status_code == code, (body, r.json())


def test_overrides_polygons_rerender_and_export(review_render: Analysed) -> None:  # noqa: F811
    c, h, uid, n = review_render.client, _h(review_render), review_render.uid, review_render.frames
    before_mask = c.get(f"/api/renders/{uid}/frames/12/mask.jpg", headers=h).content
    before_out = c.get(f"/api/renders/{uid}/frames/30/swapped.jpg", headers=h).content
    # a per-range override: 30..31 keep the original face; then one removed again
    r = c.post(f"/api/renders/{uid}/overrides", json={"first": 30, "last": 31, "settings": {"keep_original": True}},
               headers=h).json()
    assert r["dirty"] == 2
    extra = c.post(f"/api/renders/{uid}/overrides", json={"first": 50, "settings": {"mask_erode": 20}},
                   headers=h).json()
    assert extra["dirty"] == 3
    assert c.delete(f"/api/renders/{uid}/overrides/{extra['id']}", headers=h).json()["dirty"] == 2
    assert c.delete(f"/api/renders/{uid}/overrides/{extra['id']}", headers=h).status_code == 404
    # polygons: drawn at frame 10 in frame pixels, carried forward until the next polygon edit
    lm_box = [[100, 60], [140, 60], [140, 100], [100, 100]]
    exclude = [{"mode": "exclude", "points": lm_box}]
    p10 = c.post(f"/api/renders/{uid}/polygons", json={"frame": 10, "polygons": exclude}, headers=h).json()
    assert (p10["first"], p10["last"]) == (10, n - 1)
    p15 = c.post(f"/api/renders/{uid}/polygons", json={"frame": 15, "polygons": []}, headers=h).json()
    assert (p15["first"], p15["last"]) == (15, n - 1)
    p5 = c.post(f"/api/renders/{uid}/polygons", json={"frame": 5, "polygons": [{"mode": "include", "points": lm_box}]},
                headers=h).json()
    assert (p5["first"], p5["last"]) == (5, 9)  # stops where the later edit starts
    at12 = c.get(f"/api/renders/{uid}/frames/12", headers=h).json()
    assert [p["mode"] for p in at12["polygons"]] == ["exclude"]
    assert np.allclose(c.get(f"/api/renders/{uid}/frames/10", headers=h).json()["polygons"][0]["points"], lm_box,
                       atol=0.05)
    assert c.get(f"/api/renders/{uid}/frames/16", headers=h).json()["polygons"] == []
    dirty = c.get(f"/api/renders/{uid}", headers=h).json()["dirty"]
    assert dirty == 2 + 5 + 5  # 30-31, 10-14, 5-9
    # re-render only those frames
    job = wait_job(c, c.post(f"/api/renders/{uid}/rerender", json={}, headers=h).json(), review_render.token)
    assert job["status"] == "done", job
    assert sorted(job["result"]["frames"]) == [*range(5, 15), 30, 31]
    after = c.get(f"/api/renders/{uid}", headers=h).json()
    assert after["dirty"] == 0 and after["revision"] >= 2 and after["frame_status"][30] == "k"
    assert c.get(f"/api/renders/{uid}/frames/12/mask.jpg", headers=h).content != before_mask
    kept = c.get(f"/api/renders/{uid}/frames/30/swapped.jpg", headers=h).content
    original = c.get(f"/api/renders/{uid}/frames/30/original.jpg", headers=h).content
    assert kept != before_out
    a, b = (cv2.imdecode(np.frombuffer(x, np.uint8), cv2.IMREAD_COLOR).astype(int) for x in (kept, original))
    assert np.abs(a - b).mean() < 3  # keep_original: only the watermark and JPEG differ
    # export: the whole video again through merge's writer, watermarked, with content credentials
    job = wait_job(c, c.post(f"/api/renders/{uid}/export", headers=h).json(), review_render.token)
    assert job["status"] == "done", job
    out = review_render.root / "out.mp4"
    assert job["result"]["frames"] == n and probe(out).frame_count == n
    assert "credentials_sidecar" in job["result"]["provenance"] or job["result"]["provenance"]
    frames = [f.image for f in read_frames(out)]
    with Workspace.open(review_render.root / "ws") as ws:
        render = ws.renders.get(review_render.render_id)
        assert render.status == "done"
        scores = ws.scores.count(render.id)
    assert scores == n  # merge rewrote its frame rows; review's scores are kept apart and survive
    assert not c.get(f"/api/renders/{uid}", headers=h).json()["stale"]  # exported by review: still in step
    with Workspace.open(review_render.root / "ws") as ws:
        ws.renders.finish(review_render.render_id, "done")  # as if merged again outside review
        query(ws, "UPDATE renders SET finished_at = '2099-01-01T00:00:00+00:00' WHERE id = ?",
              (review_render.render_id,))
    assert c.get(f"/api/renders/{uid}", headers=h).json()["stale"]
    found = detect(frames)
    assert found.detected and found.payload == render_payload(uid)
    assert c.post("/api/renders/0123456789abcdef/export", headers=h).status_code == 404
    assert c.get("/api/jobs/999", headers=h).status_code == 404


def test_review_command_serves_with_a_token(review_render: Analysed, tmp_path: Path) -> None:  # noqa: F811
    """`doppel review WS --port 0 --no-browser` prints a tokenised 127.0.0.1 URL and refuses requests without it."""
    import re
    import subprocess
    import sys
    import time

    import httpx

    proc = subprocess.Popen([sys.executable, "-m", "doppel.cli.app", "review", str(review_render.root / "ws"),
                             "--port", "0", "--no-browser"], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)/\?token=([\w-]+)", line)
        assert found, line
        url = found.group(0)
        deadline = time.time() + 20
        while True:
            try:
                page = httpx.get(url, timeout=2)
                break
            except httpx.ConnectError:
                assert time.time() < deadline, "server did not start"
                time.sleep(0.1)
        assert page.status_code == 200 and "doppel review" in page.text
        base = url.split("/?")[0]
        assert httpx.get(f"{base}/api/renders").status_code == 401
        assert httpx.get(f"{base}/api/renders", headers={"X-Doppel-Token": found.group(2)}).json()[0]["uid"] \
            == review_render.uid
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    from typer.testing import CliRunner

    from doppel.cli.app import app

    bad = CliRunner().invoke(app, ["review", str(tmp_path / "nowhere"), "--no-browser"])
    assert bad.exit_code != 0 and "no such workspace" in bad.stderr


def test_a_new_token_url_replaces_a_stale_cookie(review_render: Analysed) -> None:  # noqa: F811
    """After a restart (a new token), opening the new tokenised URL must not leave the old cookie in charge."""
    from fastapi.testclient import TestClient

    c = TestClient(review_render.app, base_url="http://127.0.0.1:8765")
    c.cookies.set("doppel_review_8765", "a-token-from-an-earlier-server")
    page = c.get(f"/?token={review_render.token}")
    assert page.status_code == 200 and f"doppel_review_8765={review_render.token}" in page.headers["set-cookie"]
    assert c.get("/static/app.js").status_code == 200 and c.get("/api/renders").status_code == 200


def test_cookies_of_two_servers_on_one_machine_do_not_collide(review_render: Analysed) -> None:  # noqa: F811
    from fastapi.testclient import TestClient

    c = TestClient(review_render.app, base_url="http://127.0.0.1:8765")
    c.cookies.set("doppel_review_8766", "the-other-servers-token")
    assert c.get(f"/?token={review_render.token}").status_code == 200
    assert c.get("/api/renders").status_code == 200


@pytest.mark.parametrize("bad", [float("inf"), 1e400, 2.7, True, "3", None, [1], -1])
def test_frame_numbers_must_be_json_integers(review_render: Analysed, bad: object) -> None:  # noqa: F811
    import json

    c, h, uid = review_render.client, {**_h(review_render), "content-type": "application/json"}, review_render.uid

    def post(path: str, body: dict) -> int:
        raw = json.dumps(body).replace("Infinity", "1e400")  # what a hostile client can send
        return c.post(f"/api/renders/{uid}/{path}", content=raw, headers=h).status_code

    assert post("overrides", {"first": bad, "settings": {"colour": "none"}}) == 422
    assert post("overrides", {"first": 1, "last": bad, "settings": {"colour": "none"}}) == 422
    assert post("polygons", {"frame": bad, "polygons": []}) == 422
    assert post("rerender", {"frames": [bad]}) == 422
    if isinstance(bad, float):
        assert c.get(f"/api/renders/{uid}/frames/{bad}", headers=h).status_code == 422


def test_polygons_only_through_their_endpoint_and_never_echoed_whole(review_render: Analysed) -> None:  # noqa: F811
    c, h, uid = review_render.client, _h(review_render), review_render.uid
    poly = {"mode": "exclude", "points": [[0.1, 0.1], [0.5, 0.1], [0.3, 0.5]]}
    r = c.post(f"/api/renders/{uid}/overrides", json={"first": 1, "settings": {"mask_polygons": [poly]}}, headers=h)
    assert r.status_code == 422 and "polygons" in r.json()["error"]
    huge = {"frame": 1, "polygons": [{"mode": "exclude", "points": [[i % 97, i % 89] for i in range(200_000)]}]}
    r = c.post(f"/api/renders/{uid}/polygons", json=huge, headers=h)
    assert r.status_code in (413, 422) and len(r.content) < 2000


def test_request_bodies_are_limited(review_render: Analysed) -> None:  # noqa: F811
    c, uid = review_render.client, review_render.uid
    big = b'{"first": 1, "settings": {"colour": "none"}, "pad": "' + b"x" * (2 << 20) + b'"}'
    r = c.post(f"/api/renders/{uid}/overrides", content=big,
               headers={**_h(review_render), "content-type": "application/json"})
    assert r.status_code == 413


def test_a_damaged_cached_frame_is_a_clear_error(review_render: Analysed) -> None:  # noqa: F811
    cache = review_render.root / "ws" / "renders" / review_render.uid / "review" / "frames"
    target = sorted(cache.glob("out_*.jpg"))[3]
    index = int(target.stem.split("_")[1])
    saved = target.read_bytes()
    try:
        target.write_bytes(b"not a jpeg")
        for view in ("mask", "diff"):
            r = review_render.client.get(f"/api/renders/{review_render.uid}/frames/{index}/{view}.jpg",
                                         headers=_h(review_render))
            assert r.status_code == 404 and "damaged" in r.json()["error"]
    finally:
        target.write_bytes(saved)


@pytest.mark.parametrize("bound, host, ok", [
    ("0.0.0.0", "192.168.1.20:8765", True), ("0.0.0.0", "[fe80::1]:8765", True), ("0.0.0.0", "localhost", True),
    ("0.0.0.0", "evil.example:8765", False), ("::", "attacker.test", False), ("127.0.0.1", "192.168.1.20", False),
    ("127.0.0.1", "127.0.0.1:8765", True), ("10.0.0.5", "10.0.0.5:1", True), ("10.0.0.5", "", False),
])
def test_the_host_check_stays_on_when_bound_to_every_interface(bound: str, host: str, ok: bool) -> None:
    from doppel.review.guard import host_allowed

    assert host_allowed(host, bound) is ok


def test_a_busy_port_is_one_clear_error_before_any_url(review_render: Analysed) -> None:  # noqa: F811
    import socket

    from typer.testing import CliRunner

    from doppel.cli.app import app

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        res = CliRunner().invoke(app, ["review", str(review_render.root / "ws"), "--port", str(port),
                                       "--no-browser"])
    assert res.exit_code == 2 and f"cannot listen on 127.0.0.1:{port}" in res.output
    assert "token=" not in res.output
