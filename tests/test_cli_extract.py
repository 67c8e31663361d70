"""`doppel extract`: the report, and one clear line + non-zero exit + untouched workspace on bad input."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from doppel.cli.app import app
from doppel.demo.media import synth_frames, write_clip

runner = CliRunner()


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clip(tmp_path_factory.mktemp("cli") / "astro.mp4", synth_frames("astronaut", 30, 320, 240))


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    result = runner.invoke(app, ["init", str(tmp_path / "ws")])
    assert result.exit_code == 0, result.output
    return tmp_path / "ws"


def _state(ws: Path) -> dict[str, str]:
    return {p.relative_to(ws).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(ws.rglob("*"))}


def test_extract_json_report(ws: Path, clip: Path) -> None:
    result = runner.invoke(app, ["extract", str(ws), "--identity", "astro", str(clip), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    for key in ("identity", "frames", "frames_with_face", "faces", "seconds", "fps", "clips"):
        assert key in report
    assert report["identity"] == "astro" and report["frames"] == 30 and report["faces"] == 30
    assert report["clips"][0]["screen"]["frames_checked"] >= 1  # the real explicit-content screen ran
    # Human output (and a second run replaces, not duplicates).
    again = runner.invoke(app, ["extract", str(ws), "-i", "astro", str(clip), "--every", "2", "--size", "128"])
    assert again.exit_code == 0, again.output
    assert "15 faces" in again.stderr


def _fails(args: list[str], ws: Path, *needles: str) -> None:
    before = _state(ws)
    result = runner.invoke(app, args)
    assert result.exit_code != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("doppel: error:")]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0]
    assert _state(ws) == before


def test_missing_file(ws: Path, tmp_path: Path) -> None:
    _fails(["extract", str(ws), "-i", "x", str(tmp_path / "gone.mp4")], ws, "gone.mp4", "no such file")


def test_not_a_video(ws: Path, tmp_path: Path) -> None:
    bad = tmp_path / "notes.mov"
    bad.write_text("hello")
    _fails(["extract", str(ws), "-i", "x", str(bad)], ws, "notes.mov", "not a readable video")


def test_video_with_no_face(ws: Path, noface_clip: Path) -> None:
    _fails(["extract", str(ws), "-i", "x", str(noface_clip)], ws, "noface.mp4", "no face found")


def test_one_bad_input_among_good_ones_changes_nothing(ws: Path, clip: Path, tmp_path: Path) -> None:
    _fails(["extract", str(ws), "-i", "x", str(clip), str(tmp_path / "gone.mp4")], ws, "gone.mp4")


def test_workspace_missing(tmp_path: Path, clip: Path) -> None:
    result = runner.invoke(app, ["extract", str(tmp_path / "nowhere"), "-i", "x", str(clip)])
    assert result.exit_code != 0 and "nowhere" in result.stderr and "no such workspace" in result.stderr
    assert not (tmp_path / "nowhere").exists()


def test_corrupt_database(ws: Path, clip: Path) -> None:
    (ws / "doppel.db").write_bytes(b"this is not sqlite" * 100)
    _fails(["extract", str(ws), "-i", "x", str(clip)], ws, "doppel.db", "corrupt")


def test_bad_options(ws: Path, clip: Path, tmp_path: Path) -> None:
    _fails(["extract", str(ws), "-i", "no/slash", str(clip)], ws, "identity name")
    _fails(["extract", str(ws), "-i", "x", str(clip), "--size", "8"], ws, "--size")
    photo = tmp_path / "blank.png"
    photo.write_bytes(b"")
    _fails(["extract", str(ws), "-i", "x", str(clip), "--person", str(photo)], ws, "blank.png")


def test_backend_options_come_from_the_registry(ws: Path, clip: Path) -> None:
    help_text = runner.invoke(app, ["extract", "--help"]).stdout
    assert "dlib-hog" in help_text and "dlib-mmod" in help_text and "dlib-68" in help_text
    r = runner.invoke(app, ["extract", str(ws), "-i", "x", str(clip), "--detector", "nope"])
    assert r.exit_code != 0 and "nope" in r.stderr
