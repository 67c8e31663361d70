"""`doppel demo`: its output folder handling (fast) and one whole run on a tiny budget (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from doppel.cli.app import app
from doppel.cli.demo import summary
from doppel.core.errors import ConfigError, InputError
from doppel.workflow.demo import MARKER, DemoConfig, DemoReport, prepare_out, run_demo


def test_prepare_out_creates_clears_own_and_refuses_others(tmp_path: Path) -> None:
    fresh = tmp_path / "new"
    prepare_out(fresh)
    assert fresh.is_dir()
    (fresh / MARKER).write_text("{}")
    (fresh / "output.mp4").write_bytes(b"old")
    prepare_out(fresh)  # an earlier demo's folder is replaced
    assert fresh.is_dir() and not any(fresh.iterdir())
    other = tmp_path / "mine"
    other.mkdir()
    (other / "thesis.txt").write_text("keep me")
    with pytest.raises(InputError, match="not an earlier demo"):
        prepare_out(other)
    assert (other / "thesis.txt").read_text() == "keep me"
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        prepare_out(afile)


def test_config_rejects_bad_budget(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="minutes"):
        DemoConfig(out=tmp_path, minutes=0)


def test_cli_refuses_a_foreign_folder_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path), "--minutes", "0.1"])
    assert result.exit_code == 2
    assert "not an earlier demo's folder" in result.output and "Traceback" not in result.output


def test_summary_names_every_artefact() -> None:
    report = DemoReport(out="d", output="d/output.mp4", contact_sheet="d/contact_sheet.png", eval_report="d/eval.json",
                        verify_report="d/verify.json", seconds=600.0,
                        train={"steps": 10, "seconds": 60.0, "images_per_s": 2.0, "arch": "df", "resolution": 64},
                        merge={"swapped": 100, "frames": 100},
                        verify={"watermark": {"detected": True, "payload": 7}, "credentials": {"valid": True}},
                        eval={"id_sim_src": 0.95, "id_sim_dst": 0.8, "id_src_wins": 1.0})
    text = "\n".join(summary(report))
    for needle in ("10.0 min", "d/output.mp4", "d/contact_sheet.png", "d/eval.json", "d/verify.json",
                   "100 of 100", "watermark found", "intact", "100%"):
        assert needle in text


@pytest.mark.slow
def test_whole_demo_on_a_tiny_budget(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    report = run_demo(DemoConfig(out=out, minutes=0.2, seconds=2.0))
    for name in ("output.mp4", "contact_sheet.png", "eval.json", "verify.json", "summary.json"):
        assert (out / name).is_file(), name
    ev = json.loads((out / "eval.json").read_text())
    # every frame was swapped and measured (an untrained model's face may not read as a face at all)
    assert ev["frames_compared"] + ev["frames_face_lost"] == ev["frames"] and ev["frames_embedded"] > 0
    assert ev["src"] == "hopper" and ev["dst"] == "astronaut"
    verify = json.loads((out / "verify.json").read_text())
    assert verify["watermark"]["detected"] is True
    assert report.merge["swapped"] == report.merge["frames"] == 50
