"""`doppel verify`: marked and unmarked files, attacked files, credentials, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from doppel.cli.app import app
from doppel.io.image import write_image
from doppel.io.video import read_frames
from doppel.io.writer import VideoWriter
from doppel.provenance.consent import add_consent
from doppel.provenance.credentials import RenderCredentials, embed_credentials
from doppel.provenance.label import add_label
from doppel.provenance.verify import verify_file
from doppel.provenance.watermark import Watermarker, render_payload
from doppel.store.records import NewClip
from doppel.workflow.workspace import create_workspace

UID = "r-test-verify"
PAYLOAD = render_payload(UID)


def scene(n: int, h: int = 480, w: int = 640, seed: int = 0,
          scales: tuple[int, ...] = (2, 8, 32, 96)) -> list[np.ndarray]:
    """A textured scene panning slowly (texture at the given scales, in pixels, fills the frame)."""
    rng = np.random.default_rng(seed)
    big = np.zeros((h + 32, w + 32 + 3 * n, 3), np.float32)
    for scale in scales:
        layer = rng.normal(0, 1, (big.shape[0] // scale + 2, big.shape[1] // scale + 2, 3)).astype(np.float32)
        big += cv2.resize(layer, (big.shape[1], big.shape[0]), interpolation=cv2.INTER_CUBIC) * (6 + scale / 4)
    big = np.clip(big + 120, 0, 255).astype(np.uint8)
    return [np.ascontiguousarray(big[16:16 + h, 3 * i:3 * i + w]) for i in range(n)]


def studio(n: int, h: int = 540, w: int = 960, seed: int = 0) -> list[np.ndarray]:
    """A lit backdrop with grain and textured shapes moving across it: like footage, unlike pure noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([70 + 80 * (xx / w) * (c + 1) / 3 + 40 * np.cos(yy / h * 2 + c) for c in range(3)], axis=-1)
    shapes = []
    for _ in range(3):
        size = rng.uniform(0.15, 0.3) * h
        tex = rng.normal(0, 1, (int(size) // 4 + 2, int(size) // 4 + 2, 3)).astype(np.float32)
        shapes.append((rng.uniform(0.2, 0.8) * w, rng.uniform(0.3, 0.7) * h, size, rng.uniform(-4, 4),
                       rng.uniform(60, 200, 3), cv2.resize(tex, (w, h), interpolation=cv2.INTER_CUBIC) * 18))
    grain = rng.normal(0, 1.5, (h, w, 3)).astype(np.float32)
    frames = []
    for t in range(n):
        img = base.copy()
        for cx, cy, size, vx, colour, texture in shapes:
            inside = ((xx - cx - vx * t) / size) ** 2 + ((yy - cy) / (1.3 * size)) ** 2 < 1
            img[inside] = colour + texture[inside]
        img = cv2.GaussianBlur(img.astype(np.float32), (0, 0), 1.0) + np.roll(grain, 7 * t, axis=(0, 1))
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
    return frames


def write(path: Path, frames: list[np.ndarray], crf: int = 18) -> Path:
    h, w = frames[0].shape[:2]
    with VideoWriter(path, width=w, height=h, fps=25, crf=crf, preset="veryfast") as out:
        for f in frames:
            out.write(f)
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("verify")
    frames = studio(16)
    wm = Watermarker(PAYLOAD)
    marked = write(d / "marked.mp4", [wm.embed(f) for f in frames])
    plain = write(d / "plain.mp4", frames)
    # Re-encode at CRF 28 after a 50% downscale: what a platform does to an upload.
    small = [cv2.resize(f.image, (480, 270), interpolation=cv2.INTER_AREA) for f in read_frames(marked)]
    attacked = write(d / "attacked.mp4", small, crf=28)
    return {"marked": marked, "plain": plain, "attacked": attacked, "dir": d}


def test_marked_file(clips: dict[str, Path]) -> None:
    r = verify_file(clips["marked"])
    assert r.readable and r.kind == "video" and r.error is None
    assert r.watermark["detected"] and r.watermark["payload"] == PAYLOAD and r.watermark["frames_checked"] == 16
    assert not r.credentials["present"] and "no content credentials" in " ".join(r.findings)


def test_unmarked_file(clips: dict[str, Path]) -> None:
    r = verify_file(clips["plain"])
    assert r.readable and not r.watermark["detected"] and r.watermark["payload"] is None
    assert r.watermark["confidence"] == 0.0 and "no doppel watermark found" in r.findings[0]


def test_marked_after_downscale_and_crf28(clips: dict[str, Path]) -> None:
    r = verify_file(clips["attacked"])
    assert r.watermark["detected"] and r.watermark["payload"] == PAYLOAD


def test_marked_still_image(tmp_path: Path) -> None:
    image = Watermarker(PAYLOAD).embed(scene(1, 400, 600, seed=4)[0])
    write_image(tmp_path / "still.png", add_label(image, "top-left"))  # the visible label does not hurt it
    r = verify_file(tmp_path / "still.png")
    assert r.kind == "image" and r.watermark["detected"] and r.watermark["payload"] == PAYLOAD


def test_signed_render_with_workspace(tmp_path: Path, clips: dict[str, Path]) -> None:
    with create_workspace(tmp_path / "ws") as ws:
        rec = add_consent(ws, "alice", "Alice", "test", "own-likeness", None)
        out = tmp_path / "ws" / "renders" / "out.mp4"
        out.write_bytes(clips["marked"].read_bytes())
        embed_credentials(ws.keys_dir(), out, RenderCredentials(UID, "alice_to_bob", [rec.record_hash],
                                                     watermark_payload=PAYLOAD))
    r = verify_file(out)
    assert r.credentials["present"] and r.credentials["valid"] and not r.credentials["trusted"]
    assert any("trust in the signer" in s for s in r.not_checked)
    r = verify_file(out, workspace=tmp_path / "ws")
    assert r.credentials["trusted"] and r.credentials["render_id"] == UID
    assert r.watermark["payload"] == r.credentials["watermark_payload"] == PAYLOAD
    assert r.workspace is not None and r.workspace["consents"] == [{"record_hash": rec.record_hash,
                                                                    "in_workspace": True}]


def test_bad_input_gives_a_clear_result(tmp_path: Path, clips: dict[str, Path]) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n" * 50)
    r = verify_file(text)
    assert not r.readable and r.error and "not a readable video" in r.error
    assert not r.watermark["detected"] and not r.credentials["present"]
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(clips["marked"].read_bytes()[: clips["marked"].stat().st_size // 3])
    r = verify_file(truncated)  # whatever decodes is checked; no traceback
    assert r.watermark.get("checked") in (True, False) and isinstance(r.findings, list)
    r = verify_file(tmp_path / "missing.mp4")
    assert r.error == "no such file" and not r.readable


def test_cli_json_and_exit_codes(tmp_path: Path, clips: dict[str, Path]) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["verify", str(clips["marked"]), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["watermark"]["detected"] is True and data["watermark"]["payload"] == PAYLOAD
    assert data["watermark"]["confidence"] > 0.999 and data["credentials"]["present"] is False
    assert data["credentials"]["valid"] is False
    junk = tmp_path / "junk.mov"
    junk.write_bytes(b"\x00" * 1000)
    res = runner.invoke(app, ["verify", str(junk), "--json"])
    assert res.exit_code == 2 and json.loads(res.stdout)["readable"] is False
    assert "Traceback" not in res.output


def test_cli_consent(tmp_path: Path) -> None:
    runner = CliRunner()
    ws = tmp_path / "ws"
    assert runner.invoke(app, ["init", str(ws)]).exit_code == 0
    res = runner.invoke(app, ["consent", "add", str(ws), "--identity", "alice", "--subject", "Alice A.",
                              "--scope", "film X", "--basis", "signed-release", "--json"])
    assert res.exit_code == 0, res.output
    added = json.loads(res.stdout)
    res = runner.invoke(app, ["consent", "list", str(ws), "--json"])
    assert [r["record_hash"] for r in json.loads(res.stdout)] == [added["record_hash"]]
    res = runner.invoke(app, ["consent", "add", str(ws), "--identity", "bob", "--subject", "B", "--scope", "s",
                              "--basis", "because"])
    assert res.exit_code != 0


def test_label_marks_only_its_corner() -> None:
    img = np.full((360, 640, 3), 200, np.uint8)
    out = add_label(img, "bottom-right")
    changed = np.argwhere((out != img).any(axis=2))
    assert changed.size and changed[:, 0].min() > 360 * 0.75 and changed[:, 1].min() > 640 * 0.6
    with pytest.raises(ValueError, match="unknown corner"):
        add_label(img, "middle")  # type: ignore[arg-type]


@pytest.mark.media
@pytest.mark.slow
def test_real_footage_after_downscale_crop_and_crf28(tmp_path: Path) -> None:
    from conftest import shared_clip

    src = shared_clip("lp_s18_woman_redhair_720p.mp4")
    wm = Watermarker(PAYLOAD)
    marked = write(tmp_path / "marked.mp4", [wm.embed(f.image) for f in read_frames(src, stop=48)])
    attacked = [cv2.resize(f.image[:, 128:], (576, 360), interpolation=cv2.INTER_AREA) for f in read_frames(marked)]
    r = verify_file(write(tmp_path / "attacked.mp4", attacked, crf=28))
    assert r.watermark["detected"] and r.watermark["payload"] == PAYLOAD
    plain = write(tmp_path / "plain.mp4", [f.image for f in read_frames(src, stop=48)], crf=28)
    assert not verify_file(plain).watermark["detected"]


def test_weak_mark_read_against_the_workspace_renders(tmp_path: Path, clips: dict[str, Path]) -> None:
    """A 35% x 60% crop, halved and re-encoded at CRF 30: too weak to decode blind, found by testing the
    payloads of the workspace's renders; an unmarked clip matches none of them."""
    def attack(src: Path, name: str) -> Path:
        small = [cv2.resize(np.ascontiguousarray(f.image[100:424, 600:936]), None, fx=0.5, fy=0.5,
                            interpolation=cv2.INTER_AREA) for f in read_frames(src)]
        return write(tmp_path / name, small, crf=30)

    weak, plain = attack(clips["marked"], "weak.mp4"), attack(clips["plain"], "plain.mp4")
    # Usually too weak to decode blind; x264 does not always give the same bits, so on the runs where the
    # blind read succeeds the workspace read must agree with it (match_candidates itself is tested on
    # fixed soft bits in test_watermark.py).
    blind = verify_file(weak).watermark
    rng = np.random.default_rng(5)
    payloads = [PAYLOAD, *(int(p) for p in rng.integers(0, 2**32, 199))]
    with create_workspace(tmp_path / "ws") as ws:
        clip = ws.clips.add(NewClip(str(plain), "hash", "video", 336, 324, 25.0, 16, 0.64, False))
        for i, payload in enumerate(payloads):
            ws.renders.create(uid=f"r{i}", model_id=None, clip_id=clip, output_path=f"out{i}.mp4", settings={},
                              settings_hash="x", watermark_payload=payload, consent_hash=None, overrides=())
    r = verify_file(weak, workspace=tmp_path / "ws")
    wm = r.watermark
    assert wm["detected"] and wm["payload"] == PAYLOAD and r.verdict == "marked"
    assert r.workspace is not None and [x["uid"] for x in r.workspace["renders"]] == ["r0"]
    assert blind["method"] == ("mark" if blind["detected"] and blind["payload"] is None else "decoded")
    if blind["payload"] is None:  # not found blind, or found without its payload: the renders' payloads name it
        assert wm["method"] == "candidates" and wm["candidates"] == 200
        assert wm["candidate_z"] > 6.6 and wm["false_positive_bound"] <= 1e-6
        assert any("matched among 200 renders" in f for f in r.findings)
        shown = CliRunner().invoke(app, ["verify", str(weak), "--workspace", str(tmp_path / "ws")])
        assert shown.exit_code == 0 and "matched among the workspace's 200 renders" in " ".join(shown.output.split())
    else:
        assert wm["method"] == "decoded"
    r = verify_file(plain, workspace=tmp_path / "ws")
    assert not r.watermark["detected"] and r.watermark["candidate_z"] < 4.5 and r.verdict == "unmarked"
