"""Review benchmark: opening a 1,000-frame render in the review app, and analysing it.

A synthetic 1,000-frame clip (a moving cartoon face, 320x240, made on the fly) is merged by the
real pipeline with merge's test-double swapper (a colour shift: no trained model is needed for
what this measures), then analysed once (replay, cached frames and thumbnails, glitch scores).
Measured:

- **page load (HTTP)**: every request the page makes to show the render, in order, against a real
  uvicorn server (page, CSS, JS, schema, render list, the render's summary, frame 0's details and
  image, the first thumbnail sheet); median of 7;
- **page load (browser)**: headless Chromium from navigation to the page's ready mark (timeline
  drawn, frame 0 shown); median of 3, when chromium and chromium-driver are installed;
- the analysis time per frame, and the size of the summary the page loads.

Target: the page loads in under 2 s. Run: ``python bench/run.py review`` (``--quick`` analyses with
fewer identity embeddings; the render still has 1,000 frames).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests")]  # the synthetic face clip and test-double swapper live with the tests

FRAMES = 1000
TARGET_S = 2.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _browser_load(url: str, profile: Path) -> list[float] | None:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver is None:
        return None
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,900", f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    web = webdriver.Chrome(service=Service(driver), options=opts)
    times = []
    try:
        for _ in range(3):
            web.get("about:blank")
            t0 = time.perf_counter()
            web.get(url)
            while web.execute_script("return document.body && document.body.dataset.ready") != "1":
                if time.perf_counter() - t0 > 30:
                    raise RuntimeError("the page did not become ready in 30 s")
                time.sleep(0.01)
            times.append(time.perf_counter() - t0)
    finally:
        web.quit()
    return times


@contextlib.contextmanager
def serving(work: Path, quick: bool) -> Iterator[tuple[str, str, str, dict[str, float]]]:
    """A 1,000-frame analysed render in ``work`` served by uvicorn on 127.0.0.1: yields the base URL,
    the session token, the render's uid and the set-up timings (merge, analysis)."""
    import uvicorn

    from doppel.review.analyse import analyse
    from doppel.review.app import create_app
    from doppel.review.guard import new_token
    from doppel.workflow.merge import MergeRequest, merge
    from test_merge_helpers import ShiftSwapper, face_clip, setup_workspace

    t0 = time.perf_counter()
    clip, marks = face_clip(work / "in.mp4", FRAMES, size=(320, 240), audio=False)
    ws = setup_workspace(work / "ws", clip, marks, frame_count=FRAMES)
    report = merge(ws, MergeRequest(input=clip, output=work / "out.mp4", model="m1"), swapper=ShiftSwapper())
    made = time.perf_counter() - t0
    t0 = time.perf_counter()
    analysis = analyse(ws, report.render_id, swapper=ShiftSwapper(), identity_budget=25 if quick else 250)
    times = {"make_render_s": made, "analyse_s": time.perf_counter() - t0, "identity_stride": analysis.identity_stride,
             "flagged": analysis.flagged}
    ws.close()
    token = new_token()
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(work / "ws", token, swapper_factory=ShiftSwapper),
                                           host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", token, report.render_uid, times
    finally:
        server.should_exit = True
        thread.join(timeout=5)


def run(quick: bool) -> dict[str, Any]:
    import httpx

    work = Path(tempfile.mkdtemp(prefix="doppel-bench-review-"))
    try:
        with serving(work, quick) as (base, token, uid, setup):
            paths = ["/", "/static/app.css", "/static/app.js", "/api/schema", "/api/renders", f"/api/renders/{uid}",
                     f"/api/renders/{uid}/frames/0", f"/api/renders/{uid}/frames/0/swapped.jpg",
                     f"/api/renders/{uid}/sheets/0.jpg"]
            http_times, summary_bytes = [], 0
            with httpx.Client(base_url=base, headers={"X-Doppel-Token": token}) as client:
                for _ in range(7):
                    t1 = time.perf_counter()
                    for p in paths:
                        r = client.get(p)
                        r.raise_for_status()
                        if p == f"/api/renders/{uid}":
                            summary_bytes = len(r.content)
                    http_times.append(time.perf_counter() - t1)
            browser = _browser_load(f"{base}/?token={token}", work / "chromium-profile")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    made, analysed = setup["make_render_s"], setup["analyse_s"]
    http_median = statistics.median(http_times)
    browser_median = statistics.median(browser) if browser else None
    worst = max(http_median, browser_median or 0.0)
    return {
        "target": f"a {FRAMES}-frame render's review page loads in < {TARGET_S} s",
        "passed": worst < TARGET_S,
        "headline": (f"page load {http_median * 1000:.0f} ms (HTTP)"
                     + (f", {browser_median * 1000:.0f} ms (Chromium)" if browser_median else ", no Chromium")
                     + f"; analysis {analysed / FRAMES * 1000:.0f} ms/frame"),
        "frames": FRAMES,
        "page_load_http_s": [round(t, 4) for t in http_times],
        "page_load_http_median_s": round(http_median, 4),
        "page_load_browser_s": [round(t, 4) for t in browser] if browser else None,
        "page_load_browser_median_s": round(browser_median, 4) if browser_median else None,
        "summary_json_bytes": summary_bytes,
        "make_render_s": round(made, 2),
        "analyse_s": round(analysed, 2),
        "analyse_ms_per_frame": round(analysed / FRAMES * 1000, 1),
        "identity_stride": setup["identity_stride"],
        "flagged": setup["flagged"],
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run("--quick" in sys.argv), indent=2))
