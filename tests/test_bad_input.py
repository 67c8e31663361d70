"""Inputs found by trying to break doppel (issue 16, items 9-13): each gets one clear line, a non-zero
exit, and leaves nothing half-written behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import noise_frames, query
from doppel.cli.app import app
from doppel.core.errors import ConfigError, InputError, MediaError
from doppel.io.atomic import atomic_path, remove_stale
from doppel.io.video import probe
from doppel.provenance.consent import add_consent
from doppel.store import Workspace
from doppel.workflow.extract import check_inputs
from doppel.workflow.workspace import create_workspace
from test_merge_helpers import face_clip, setup_workspace


def _faststart_clip(path: Path, n: int = 60) -> Path:
    with av.open(str(path), "w", options={"movflags": "faststart"}) as out:
        vs = out.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = 96, 64, "yuv420p"
        vs.codec_context.time_base = Fraction(1, 25)
        for i, img in enumerate(noise_frames(n, 64, 96)):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            for packet in vs.encode(frame):
                out.mux(packet)
        for packet in vs.encode(None):
            out.mux(packet)
    return path


def test_a_cut_faststart_mp4_is_reported_not_shortened(tmp_path: Path) -> None:
    whole = _faststart_clip(tmp_path / "whole.mp4")
    assert probe(whole).frame_count == 60
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.3)])
    with pytest.raises(MediaError, match=r"cut.mp4: is damaged or truncated \(\d+ of 60 frames present\)"):
        probe(cut)


def test_a_file_name_that_is_not_utf8_is_refused_up_front(tmp_path: Path) -> None:
    if sys.platform == "darwin":
        pytest.skip("macOS file systems refuse such names")
    good = _faststart_clip(tmp_path / "ok.mp4", 5)
    odd = Path(os.fsdecode(bytes(tmp_path) + b"/clip-\xff\xfe.mp4"))
    odd.write_bytes(good.read_bytes())
    with pytest.raises(InputError, match=r"clip-\\xff\\xfe.mp4: file name is not valid UTF-8"):
        check_inputs([odd])
    ws = tmp_path / "ws"
    create_workspace(ws).close()
    res = CliRunner().invoke(app, ["extract", str(ws), "-i", "p", str(odd)])
    assert res.exit_code == 2 and "not valid UTF-8" in res.output and "Traceback" not in res.output


def test_consent_refuses_identity_names_extraction_would_refuse(tmp_path: Path) -> None:
    with create_workspace(tmp_path / "ws") as ws:
        for bad in ("../x", "$(id)", "", "a/b", ".hidden"):
            with pytest.raises(ConfigError, match="identity name|must not be empty"):
                add_consent(ws, bad, "Someone", "tests", "own-likeness")
        assert ws.identities.names() == []
    res = CliRunner().invoke(app, ["consent", "add", str(tmp_path / "ws"), "--identity", "../x", "--subject", "S",
                                   "--scope", "s", "--basis", "own-likeness"])
    assert res.exit_code == 2 and "identity name" in res.output


def test_stale_temporaries_of_a_killed_writer_are_removed(tmp_path: Path) -> None:
    final = tmp_path / "out.mp4"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    stale = tmp_path / f".out.{dead.stdout.strip()}.abc123.tmp.mp4"
    live = tmp_path / f".out.{os.getppid()}.def456.tmp.mp4"  # a writer that is still running
    other = tmp_path / ".other.12345.x.tmp.mp4"
    for p in (stale, live, other):
        p.write_bytes(b"partial")
    assert remove_stale(final) == [stale]
    assert live.exists() and other.exists()
    stale.write_bytes(b"partial")
    with atomic_path(final) as tmp:
        tmp.write_bytes(b"whole")
    assert final.read_bytes() == b"whole" and not stale.exists() and live.exists()


def _merge_cmd(ws: Path, clip: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "doppel.cli.app", "merge", str(ws), str(clip), "-m", "m1", "-o", str(out),
            "--json", "--batch", "4"]


@pytest.mark.slow
def test_a_merge_killed_with_sigkill_leaves_nothing_once_rerun(tmp_path: Path) -> None:
    from doppel.train import checkpoint
    from doppel.train.config import model_config
    from doppel.train.models import build_model

    clip, marks = face_clip(tmp_path / "in.mp4", 300, audio=False)
    setup_workspace(tmp_path / "ws", clip, marks, frame_count=300).close()
    cfg = model_config(resolution=64, e_dims=8, ae_dims=16, d_dims=8, d_mask_dims=4)
    checkpoint.write_config(tmp_path / "ws" / "models" / "m1", cfg)
    checkpoint.save_weights(tmp_path / "ws" / "models" / "m1", build_model(cfg), {})
    out = tmp_path / "out.mp4"
    proc = subprocess.Popen(_merge_cmd(tmp_path / "ws", clip, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    with Workspace.open(tmp_path / "ws") as ws:
        while time.time() < deadline and not query(ws, "SELECT COUNT(*) FROM render_frames").fetchone()[0]:
            time.sleep(0.05)
    proc.kill()
    proc.communicate(timeout=60)
    assert list(tmp_path.glob(".out.*.tmp.mp4")), "the killed merge was writing a temporary"
    done = subprocess.run(_merge_cmd(tmp_path / "ws", clip, out), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["frames"] == 300 and out.exists()
    assert not list(tmp_path.glob(".out.*"))


def test_verify_exit_status_says_marked_unmarked_or_unreadable(tmp_path: Path) -> None:
    plain = tmp_path / "plain.png"
    import cv2

    cv2.imwrite(str(plain), np.full((64, 64, 3), 128, np.uint8))
    res = CliRunner().invoke(app, ["verify", str(plain), "--json"])
    assert res.exit_code == 1 and json.loads(res.stdout)["verdict"] == "unmarked"
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 100)
    res = CliRunner().invoke(app, ["verify", str(junk), "--json"])
    assert res.exit_code == 2 and json.loads(res.stdout)["verdict"] == "unreadable"
