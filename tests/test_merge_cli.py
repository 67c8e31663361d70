"""`doppel merge` on bad input: one clear line, non-zero exit, no OUTPUT (nor a temporary file) left."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from doppel.cli.app import app
from test_merge_helpers import face_clip, setup_workspace

runner = CliRunner()


@pytest.fixture
def ws_clip(tmp_path: Path) -> tuple[Path, Path]:
    clip, marks = face_clip(tmp_path / "in.mp4", 6)
    setup_workspace(tmp_path / "ws", clip, marks, frame_count=6).close()
    return tmp_path / "ws", clip


def _merge(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["merge", *args])
    return result.exit_code, result.output


def _nothing_written(folder: Path) -> None:
    assert not [p.name for p in folder.iterdir() if p.name.startswith((".out", "out"))]


def test_unknown_model(ws_clip: tuple[Path, Path], tmp_path: Path) -> None:
    ws, clip = ws_clip
    code, out = _merge(str(ws), str(clip), "--model", "nope", "-o", str(tmp_path / "out.mp4"))
    assert code != 0 and "no model 'nope' in this workspace (known: m1)" in out
    _nothing_written(tmp_path)


def test_model_of_another_workspace(ws_clip: tuple[Path, Path], tmp_path: Path) -> None:
    ws, clip = ws_clip
    other_clip, marks = face_clip(tmp_path / "other.mp4", 3)
    setup_workspace(tmp_path / "other_ws", other_clip, marks, frame_count=3, model_name="theirs").close()
    code, out = _merge(str(ws), str(clip), "--model", str(tmp_path / "other_ws" / "models" / "theirs"),
                       "-o", str(tmp_path / "out.mp4"))
    assert code != 0 and "belongs to another workspace" in out and "other_ws" in out
    _nothing_written(tmp_path)


def test_output_not_writable(ws_clip: tuple[Path, Path], tmp_path: Path) -> None:
    ws, clip = ws_clip
    code, out = _merge(str(ws), str(clip), "--model", "m1", "-o", str(tmp_path / "missing" / "out.mp4"))
    assert code != 0 and "does not exist" in out
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        code, out = _merge(str(ws), str(clip), "--model", "m1", "-o", str(locked / "out.mp4"))
        assert code != 0 and "not writable" in out
    finally:
        locked.chmod(0o700)
    code, out = _merge(str(ws), str(clip), "--model", "m1", "-o", str(tmp_path / "out.gif"))
    assert code != 0 and "unsupported output container" in out


def test_settings_out_of_range(ws_clip: tuple[Path, Path], tmp_path: Path) -> None:
    ws, clip = ws_clip
    for args, words in ((["--set", "mask_blur=1000"], "mask_blur=1000"),
                        (["--override", "2-4:face_scale=3"], "face_scale"),
                        (["--set", "colour=sepia"], "colour=sepia"),
                        (["--override", "4-2:sharpen=1"], "FIRST <= LAST")):
        code, out = _merge(str(ws), str(clip), "--model", "m1", "-o", str(tmp_path / "out.mp4"), *args)
        assert code == 2 and words in out, out
    _nothing_written(tmp_path)


def test_no_destination_person(tmp_path: Path) -> None:
    clip, _ = face_clip(tmp_path / "in.mp4", 4, absent=(0, 1, 2, 3))
    setup_workspace(tmp_path / "ws", clip, {}, frame_count=4).close()
    code, out = _merge(str(tmp_path / "ws"), str(clip), "--model", "m1", "-o", str(tmp_path / "out.mp4"))
    assert code != 0 and "no face of 'bob'" in out
    _nothing_written(tmp_path)


def test_no_consent_is_refused(tmp_path: Path) -> None:
    clip, marks = face_clip(tmp_path / "in.mp4", 4)
    setup_workspace(tmp_path / "ws", clip, marks, frame_count=4, consent=False).close()
    code, out = _merge(str(tmp_path / "ws"), str(clip), "--model", "m1", "-o", str(tmp_path / "out.mp4"))
    assert code == 3 and "no consent record for identity 'alice'" in out
    _nothing_written(tmp_path)


def test_missing_input(ws_clip: tuple[Path, Path], tmp_path: Path) -> None:
    ws, _ = ws_clip
    code, out = _merge(str(ws), str(tmp_path / "nope.mp4"), "--model", "m1", "-o", str(tmp_path / "out.mp4"))
    assert code != 0 and "nope.mp4: no such file" in out


def test_merge_with_a_real_model_folder(tmp_path: Path) -> None:
    """The product path end to end: a (tiny, untrained) model in training's format, loaded by
    doppel.train.swapper, merged from the command line with --json, --layers and an override."""
    import json

    import torch

    from doppel.io.video import probe
    from doppel.train import checkpoint
    from doppel.train.config import model_config
    from doppel.train.models import build_model

    clip, marks = face_clip(tmp_path / "in.mp4", 8, absent=(2,))
    setup_workspace(tmp_path / "ws", clip, marks, frame_count=8).close()
    cfg = model_config(resolution=64, e_dims=8, ae_dims=16, d_dims=8, d_mask_dims=4)
    folder = tmp_path / "ws" / "models" / "m1"
    torch.manual_seed(0)
    checkpoint.write_config(folder, cfg)
    checkpoint.save_weights(folder, build_model(cfg), {})
    out = tmp_path / "out.mp4"
    result = runner.invoke(app, ["merge", str(tmp_path / "ws"), str(clip), "--model", "m1", "-o", str(out), "--json",
                                 "--layers", str(tmp_path / "layers"), "--set", "colour=mkl",
                                 "--override", "5-6:keep_original=true"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["frames"], report["swapped"], report["passthrough"], report["kept"]) == (8, 5, 1, 2)
    assert report["settings"]["colour"] == "mkl" and report["stages"]["infer"] > 0
    assert probe(out).frame_count == 8 and out.with_suffix(".c2pa").is_file()
    assert len(list((tmp_path / "layers").glob("face_*.png"))) == 5


@pytest.mark.slow
def test_sigterm_interrupts_cleanly_and_rerun_resumes(tmp_path: Path) -> None:
    import signal
    import sqlite3
    import subprocess
    import sys
    import time

    clip, marks = face_clip(tmp_path / "in.mp4", 300, audio=False)
    setup_workspace(tmp_path / "ws", clip, marks, frame_count=300).close()
    from doppel.train import checkpoint
    from doppel.train.config import model_config
    from doppel.train.models import build_model

    cfg = model_config(resolution=64, e_dims=8, ae_dims=16, d_dims=8, d_mask_dims=4)
    checkpoint.write_config(tmp_path / "ws" / "models" / "m1", cfg)
    checkpoint.save_weights(tmp_path / "ws" / "models" / "m1", build_model(cfg), {})
    out = tmp_path / "out.mp4"
    args = [sys.executable, "-m", "doppel.cli.app", "merge", str(tmp_path / "ws"), str(clip), "-m", "m1",
            "-o", str(out), "--json", "--batch", "4"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    db = sqlite3.connect(tmp_path / "ws" / "doppel.db")
    deadline = time.time() + 60
    while time.time() < deadline:
        if db.execute("SELECT COUNT(*) FROM render_frames").fetchone()[0] > 0:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err
    assert db.execute("SELECT status FROM renders").fetchone()[0] == "interrupted"
    assert not out.exists() and not list(tmp_path.glob(".out*"))
    code, output = _merge(str(tmp_path / "ws"), str(clip), "-m", "m1", "-o", str(out), "--json")
    assert code == 0 and json.loads(output)["inference_reused"] > 0 and out.exists()
