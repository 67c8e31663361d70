"""`doppel demo`: its output folder handling (fast) and one whole run on a tiny budget (slow)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from doppel.cli.app import app
from doppel.cli.demo import summary
from doppel.core.errors import ConfigError, InputError
from doppel.workflow.demo import DESTINATION, MARKER, MODEL, SOURCE, DemoConfig, DemoReport, prepare_out, run_demo

ROOT = Path(__file__).resolve().parents[1]


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
                        train={"steps": 10, "seconds": 60.0, "images_per_s": 2.0, "arch": "liae", "resolution": 96,
                               "base": "doppel:cpu"},
                        merge={"swapped": 100, "frames": 100},
                        verify={"watermark": {"detected": True, "payload": 7}, "credentials": {"valid": True}},
                        eval={"id_sim_src": 0.95, "id_sim_dst": 0.8, "id_src_wins": 1.0, "sharpness_ratio": 0.61,
                              "warp_error_ratio": 1.07})
    text = "\n".join(summary(report))
    for needle in ("10.0 min", "d/output.mp4", "d/contact_sheet.png", "d/eval.json", "d/verify.json",
                   "100 of 100", "watermark found", "intact", "100%", "sharpness ratio 0.61", "warp error ratio 1.07",
                   "liae 96 px, from the base model doppel:cpu"):
        assert needle in text


def test_what_the_readme_says_about_the_demo_is_what_it_does(tmp_path: Path) -> None:
    """The README's notes on the demo against the code: time estimate as in demo.sh's header, the
    architecture and size it trains and why, the command that resumes it, the files it names."""
    from doppel.train.config import PRESETS, model_config
    from doppel.train.models import build_model
    from doppel.workflow.workspace import create_workspace

    readme = " ".join((ROOT / "README.md").read_text().split())
    header = " ".join((ROOT / "scripts" / "demo.sh").read_text().split())
    minutes = re.search(r"about (\d+) minutes on 2 CPU cores after installation", readme)
    assert minutes and f"About {minutes[1]} minutes on 2 CPU cores after installation" in header
    budget = re.search(r"a fixed (\d+)-minute training budget", readme)
    assert budget and float(budget[1]) == DemoConfig(out=tmp_path).minutes
    cfg = DemoConfig(out=tmp_path)
    trains = re.search(r"trains the `cpu` preset's network \(`(\w+)` at (\d+) px, ([\d.]+) M parameters\) "
                       r"from the base model doppel ships", readme)
    assert trains and (trains[1], int(trains[2])) == (cfg.arch, cfg.resolution)
    mcfg = model_config(PRESETS["cpu"].model, arch=cfg.arch, resolution=cfg.resolution)
    assert f"{sum(p.numel() for p in build_model(mcfg).parameters()) / 1e6:.1f}" == trains[3]
    assert cfg.base and mcfg == PRESETS["cpu"].model  # the shipped base fits it (tests/test_train_bases.py)
    resume = re.search(r"`doppel train demo-out/workspace --src (\w+) --dst (\w+) --model (\w+)", readme)
    assert resume and resume.groups() == (SOURCE.identity, DESTINATION.identity, MODEL)
    with create_workspace(tmp_path / "ws"):
        pass
    for name in re.findall(r"WS/keys/([\w.]+)", readme):
        assert (tmp_path / "ws" / "keys" / name).is_file(), f"README names WS/keys/{name}, init does not write it"


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
