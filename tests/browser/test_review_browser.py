"""A real browser on the review app: headless Chromium (Debian's ``chromium`` + ``chromium-driver``, driven
by Selenium) opens a small planted render, jumps to the next flagged frame with N, applies an override,
re-renders, and checks that the frame changed; then draws an exclude polygon on another frame, saves it
and re-renders, and checks that the mask changed. A screenshot is kept in ``test-artifacts/``.

Skips (does not fail) where Chromium, its driver or Selenium is missing; ``.ci/run`` installs them.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from test_review_helpers import Analysed, analysed_render, planted_render
from test_review_unanalysed import GatedSwapper

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
DRIVER = ("/usr/bin/chromedriver",)
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1400,900")


def _which(candidates: tuple[str, ...], name: str) -> str | None:
    found = next((c for c in candidates if Path(c).exists()), None)
    return found or shutil.which(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _serve(app: Any) -> Iterator[int]:
    import uvicorn

    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 10
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    assert srv.started
    try:
        yield port
    finally:
        srv.should_exit = True
        thread.join(timeout=5)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Analysed]]:
    rendered = analysed_render(tmp_path / "scene", n=30)
    with _serve(rendered.app) as port:
        yield f"http://127.0.0.1:{port}/?token={rendered.token}", rendered


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install selenium)")
    chromium, driver = _which(CHROMIUM, "chromium"), _which(DRIVER, "chromedriver")
    if chromium is None or driver is None:
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    web = webdriver.Chrome(service=Service(driver), options=options)
    try:
        yield web
    finally:
        web.quit()


def _until(check: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_jump_to_flagged_override_rerender_screenshot(server: tuple[str, Analysed], browser: Any) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    url, rendered = server
    body = lambda key: browser.execute_script(f"return document.body.dataset.{key} || ''")  # noqa: E731
    started = time.perf_counter()
    browser.get(url)
    _until(lambda: body("ready") == "1", what="the page to load")
    print(f"\npage ready in {time.perf_counter() - started:.2f} s")
    assert "token=" not in browser.current_url  # the token is taken out of the address bar
    headers = {"X-Doppel-Token": rendered.token}
    flagged = rendered.client.get(f"/api/renders/{rendered.uid}", headers=headers).json()
    first = min(f for f in flagged["flagged"] if f > 0)
    browser.find_element(By.TAG_NAME, "body").send_keys("n")
    _until(lambda: body("frame") == str(first), what=f"frame {first} after N")
    _until(lambda: body("imageKey").startswith(f"{first}:swapped:"), what="the frame image")
    before_key, before = body("imageKey"), body("imageHash")
    # override: keep the original face on this frame, then re-render the changed frames
    browser.find_element(By.ID, "ov-keep_original").click()
    browser.find_element(By.ID, "ov-apply").click()
    _until(lambda: "saved" in browser.find_element(By.ID, "message").text, what="the override to be saved")
    assert browser.find_element(By.ID, "dirty").text == "1"
    browser.find_element(By.ID, "btn-rerender").click()
    _until(lambda: body("job") == "done", timeout=60, what="the re-render job")
    _until(lambda: body("imageKey") not in ("", before_key), what="the re-rendered image")
    after = body("imageHash")
    assert after != before, "the frame did not change after re-render"
    _until(lambda: browser.find_element(By.ID, "dirty").text == "0", what="nothing left to re-render")
    # draw an exclude polygon over the face on frame 10 in the mask view, save it, re-render: the mask changes
    browser.find_element(By.ID, "frame-num").clear()
    browser.find_element(By.ID, "frame-num").send_keys("10", Keys.ENTER)
    _until(lambda: body("frame") == "10", what="frame 10")
    browser.find_element(By.TAG_NAME, "body").click()
    browser.find_element(By.TAG_NAME, "body").send_keys("3")
    _until(lambda: body("imageKey").startswith("10:mask:"), what="the mask view")
    mask_key, mask_before = body("imageKey"), body("imageHash")
    browser.find_element(By.ID, "poly-exclude").click()
    overlay = browser.find_element(By.ID, "overlay")
    chain = ActionChains(browser)
    for dx, dy in ((-60, -10), (60, -10), (60, 60), (-60, 60)):  # CSS pixels from the overlay's centre
        chain.move_to_element_with_offset(overlay, dx, dy).click()
    chain.perform()
    browser.find_element(By.ID, "poly-save").click()
    _until(lambda: "Polygons saved" in browser.find_element(By.ID, "message").text, what="the polygon to be saved")
    # carried forward: frames 10..end (the counter updates after the message, so wait for it)
    _until(lambda: int(browser.find_element(By.ID, "dirty").text or 0) >= 10, what="frames 10.. to re-render")
    info = rendered.client.get(f"/api/renders/{rendered.uid}/frames/10", headers=headers).json()
    assert len(info["polygons"]) == 1 and info["polygons"][0]["mode"] == "exclude"
    pts = np.array(info["polygons"][0]["points"])
    assert pts.shape == (4, 2) and 0 < pts[:, 0].min() < pts[:, 0].max() < 240 and 0 < pts[:, 1].min() < 180
    browser.find_element(By.ID, "btn-rerender").click()
    _until(lambda: body("job") == "done" and body("imageKey") not in ("", mask_key), timeout=60,
           what="the re-rendered mask")
    assert body("imageHash") != mask_before, "the mask did not change after drawing a polygon"
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "review-browser.png"
    browser.save_screenshot(str(shot))
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[0] > 400 and image.shape[1] > 800
    colours = np.unique((image[::4, ::4] // 16).reshape(-1, 3), axis=0)
    assert image.std() > 20 and len(colours) > 50, "the screenshot is blank"
    # the browser showed the kept (original) face: compare with the served original
    served = rendered.client.get(f"/api/renders/{rendered.uid}/frames/{first}/swapped.jpg", headers=headers).content
    orig = rendered.client.get(f"/api/renders/{rendered.uid}/frames/{first}/original.jpg", headers=headers).content
    a, b = (cv2.imdecode(np.frombuffer(x, np.uint8), cv2.IMREAD_COLOR).astype(int) for x in (served, orig))
    assert np.abs(a - b).mean() < 3


def test_a_render_not_yet_analysed_shows_its_frames_at_once(tmp_path: Path, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    from doppel.review.app import create_app
    from doppel.review.guard import new_token

    ws, _ = planted_render(tmp_path / "scene", 30)
    ws.close()
    token = new_token()
    GatedSwapper.gate.clear()  # the analysis waits until the page was checked mid-way
    app = create_app(tmp_path / "scene" / "ws", token, swapper_factory=GatedSwapper, identity_budget=10)
    body = lambda key: browser.execute_script(f"return document.body.dataset.{key} || ''")  # noqa: E731
    try:
        with _serve(app) as port:
            browser.get(f"http://127.0.0.1:{port}/?token={token}")
            _until(lambda: body("imageKey").startswith("0:swapped:"), what="frame 0 before any analysis")
            assert browser.execute_script("return document.getElementById('frame-img').naturalWidth") == 240
            assert browser.find_element(By.ID, "frame-max").text == "29"
            _until(lambda: "analysing in the background" in browser.find_element(By.ID, "job").text,
                   what="the analysis's progress on the page")
            browser.find_element(By.TAG_NAME, "body").send_keys("k")  # browsing works during the analysis
            _until(lambda: body("imageKey").startswith("1:swapped:"), what="frame 1")
            GatedSwapper.gate.set()
            _until(lambda: body("job") == "done", timeout=120, what="the background analysis")
            _until(lambda: "Analysed 30 frames" in browser.find_element(By.ID, "message").text,
                   what="the analysis's summary")
            assert body("frame") == "1"  # the page kept the frame the user was on
            assert browser.find_element(By.ID, "job").text == ""
    finally:
        GatedSwapper.gate.set()
