"""`doppel train` end to end with a tiny model: outputs, exact resume, interrupts, bad input, export, swapper."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from conftest import query
from doppel.cli.app import app
from doppel.store import Workspace

TINY = ["--resolution", "64", "--e-dims", "8", "--ae-dims", "16", "--d-dims", "8", "--d-mask-dims", "4",
        "--batch", "2", "--workers", "0"]
PAIR = ["--src", "astronaut", "--dst", "hopper"]
DOPPEL = [sys.executable, "-m", "doppel.cli.app"]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import facefixtures

    root = tmp_path_factory.mktemp("tpl") / "ws"
    ws = facefixtures.make_workspace(root, n=8, size=64)
    ws.identities.ensure("nobody")  # an identity with no faces
    facefixtures.add_identity(ws, "noconsent", "astronaut", 4, size=64, seed=5)
    ws.close()
    return root


@pytest.fixture
def ws(template: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "ws"
    shutil.copytree(template, dst)
    return dst


def cli(*args: str) -> tuple[int, dict | None, str]:
    res = CliRunner().invoke(app, [str(a) for a in args])
    out = res.stdout
    data = json.loads(out) if out.strip().startswith("{") else None
    return res.exit_code, data, (res.stderr if res.stderr_bytes is not None else "") + out


def test_train_writes_model_folder_and_registers(ws: Path) -> None:
    code, rep, text = cli("train", ws, *PAIR, "--model", "m", *TINY, "--iters", "3", "--json")
    assert code == 0, text
    assert rep is not None and rep["step"] == 3 and rep["status"] == "done" and rep["resumed_from"] is None
    mdir = ws / "models" / "m"
    for name in ("config.json", "train.json", "model.safetensors", "preview.png", "metrics.csv"):
        assert (mdir / name).is_file(), name
    assert [p.name for p in (mdir / "checkpoints").iterdir()] == ["step-000000003"]
    import cv2

    grid = cv2.imread(str(mdir / "preview.png"))
    assert grid.shape == (64 * 4, 64 * 5, 3)
    from doppel.provenance.watermark import detect, render_payload

    swap = cv2.cvtColor(grid[:64, 4 * 64:], cv2.COLOR_BGR2RGB)  # a face the model rendered carries the mark
    assert detect([swap]).payload == render_payload("preview:m")
    rows = _rows(mdir)
    assert [int(r["step"]) for r in rows] == [1, 3] and float(rows[-1]["loss"]) > 0
    with Workspace.open(ws) as w:
        row = query(w, "SELECT m.*, s.name AS s, d.name AS d FROM models m JOIN identities s ON "
                             "s.id = m.src_identity_id JOIN identities d ON d.id = m.dst_identity_id").fetchone()
    assert (row["name"], row["s"], row["d"], row["step"], row["arch"], row["resolution"]) == \
        ("m", "astronaut", "hopper", 3, "liae", 64)
    # already there: a rerun with the same --iters does nothing and says so
    code, rep, text = cli("train", ws, *PAIR, "--model", "m", "--iters", "3", "--json")
    assert code == 0 and rep is not None and rep["steps_run"] == 0 and rep["resumed_from"] == 3


def _rows(mdir: Path) -> list[dict[str, str]]:
    with open(mdir / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _weights(mdir: Path) -> dict[str, torch.Tensor]:
    state = sorted((mdir / "checkpoints").iterdir())[-1] / "state.safetensors"
    return load_file(str(state))


def test_resume_is_exact(ws: Path, tmp_path: Path) -> None:
    straight = tmp_path / "straight"
    shutil.copytree(ws, straight)
    assert cli("train", straight, *PAIR, "--model", "m", *TINY, "--iters", "4", "--json")[0] == 0
    assert cli("train", ws, *PAIR, "--model", "m", *TINY, "--iters", "2", "--json")[0] == 0
    # settings come from disk; a loader worker process must not change the batches
    code, rep, text = cli("train", ws, *PAIR, "--model", "m", "--iters", "4", "--workers", "1", "--json")
    assert code == 0, text
    assert rep is not None and rep["resumed_from"] == 2 and rep["step"] == 4
    a, b = _weights(straight / "models" / "m"), _weights(ws / "models" / "m")
    assert set(a) == set(b)
    for k in a:
        if k.startswith(("model.", "ema.", "opt.")):
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)
    assert torch.equal(a["rng.torch"], b["rng.torch"])


def test_base_model_and_pretrain(ws: Path) -> None:
    code, _, text = cli("train", ws, "--pretrain", "--faces", "astronaut", "--faces", "hopper", "--model", "base",
                          *TINY, "--iters", "2", "--json")
    assert code == 0, text
    code, _, text = cli("train", ws, *PAIR, "--model", "pair", "--base", "base", "--iters", "1", "--json")
    assert code == 0, text  # capacity comes from the base model
    base_w = load_file(str(ws / "models" / "base" / "model.safetensors"))
    first = load_file(str(sorted((ws / "models" / "pair" / "checkpoints").iterdir())[-1] / "state.safetensors"))
    k = "encoder.down.0.conv.weight"
    assert (first[f"model.{k}"] - base_w[k]).abs().max() < 0.01  # one step away from the base weights
    meta = json.loads((ws / "models" / "pair" / "train.json").read_text())
    assert meta["base"].endswith("models/base")
    # a base of another capacity is refused
    code, _, text = cli("train", ws, *PAIR, "--model", "pair2", "--d-mask-dims", "16", "--base", "base",
                        "--iters", "1")
    assert code == 2 and "base model has" in text and "d_mask_dims 4 (asked 16)" in text


@pytest.mark.parametrize(("args", "code", "message"), [
    (["--src", "astronaut", "--dst", "nobody", "--model", "x"], 2, "no faces"),
    (["--src", "astronaut", "--dst", "ghost", "--model", "x"], 2, "no identity 'ghost'"),
    (["--src", "astronaut", "--dst", "hopper", "--model", "x", "--preset", "huge"], 2, "unknown preset 'huge'"),
    (["--src", "astronaut", "--dst", "hopper", "--model", "x", "--device", "cuda"], 2, "not available"),
    (["--src", "astronaut", "--dst", "hopper", "--model", "x", "--resolution", "100"], 2, "multiple of 32"),
    (["--src", "noconsent", "--dst", "hopper", "--model", "x"], 3, "no consent record"),
    (["--pretrain", "--model", "x"], 2, "--faces"),
])
def test_bad_input(ws: Path, args: list[str], code: int, message: str) -> None:
    got, _, text = cli("train", ws, *args, *TINY[-2:], "--iters", "1")
    assert got == code, text
    assert message in text
    assert not (ws / "models" / "x" / "model.safetensors").exists()


def test_missing_workspace_and_arch_change(ws: Path, tmp_path: Path) -> None:
    code, _, text = cli("train", tmp_path / "nope", *PAIR, "--model", "m", "--iters", "1")
    assert code == 2 and "no such workspace" in text
    assert cli("train", ws, *PAIR, "--model", "m", *TINY, "--iters", "1")[0] == 0
    code, _, text = cli("train", ws, *PAIR, "--model", "m", "--arch", "df", "--iters", "2")
    assert code == 2 and "arch 'liae' (asked 'df')" in text
    code, _, text = cli("train", ws, "--src", "hopper", "--dst", "astronaut", "--model", "m", "--iters", "2")
    assert code == 2 and "same face sets" in text


def _spawn(ws: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([*DOPPEL, "train", str(ws), *PAIR, "--model", "m", *TINY, *extra, "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def _wait_for(pred, timeout: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.1)


def _steps_logged(mdir: Path) -> int:
    try:
        rows = _rows(mdir)
    except (OSError, csv.Error):
        return 0
    return max((int(r["step"]) for r in rows if r.get("step")), default=0)


@pytest.mark.slow
def test_sigterm_checkpoints_and_resumes(ws: Path) -> None:
    mdir = ws / "models" / "m"
    proc = _spawn(ws, "--iters", "100000", "--checkpoint-minutes", "100")
    _wait_for(lambda: _steps_logged(mdir) >= 10)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    rep = json.loads(out)
    assert rep["status"] == "interrupted" and rep["step"] >= 10
    code, rep2, text = cli("train", ws, *PAIR, "--model", "m", "--iters", str(rep["step"] + 2), "--json")
    assert code == 0, text
    assert rep2 is not None and rep2["resumed_from"] == rep["step"] and rep2["step"] == rep["step"] + 2


@pytest.mark.slow
def test_sigkill_resumes_from_last_checkpoint(ws: Path) -> None:
    mdir = ws / "models" / "m"
    proc = _spawn(ws, "--iters", "100000", "--checkpoint-minutes", "0.003")
    _wait_for(lambda: len(list((mdir / "checkpoints").glob("step-*"))) >= 2 if (mdir / "checkpoints").is_dir()
              else False)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    intact = sorted((mdir / "checkpoints").glob("step-*"))
    last = int(intact[-1].name.split("-")[1])
    code, rep, text = cli("train", ws, *PAIR, "--model", "m", "--iters", str(last + 1), "--json")
    assert code == 0, text
    assert rep is not None and rep["resumed_from"] == last and rep["step"] == last + 1
    assert not list((mdir / "checkpoints").glob(".tmp-*"))
    rows = [int(r["step"]) for r in _rows(mdir)]
    assert rows == sorted(rows) and rows[-1] == last + 1  # rows past the checkpoint were dropped


def test_corrupt_latest_checkpoint_falls_back(ws: Path) -> None:
    mdir = ws / "models" / "m"
    assert cli("train", ws, *PAIR, "--model", "m", *TINY, "--iters", "1", "--json")[0] == 0
    assert cli("train", ws, *PAIR, "--model", "m", "--iters", "2", "--json")[0] == 0
    latest = mdir / "checkpoints" / "step-000000002" / "state.safetensors"
    latest.write_bytes(latest.read_bytes()[:1000])  # truncated, as by a crash mid-copy
    code, rep, text = cli("train", ws, *PAIR, "--model", "m", "--iters", "3", "--json")
    assert code == 0, text
    assert rep is not None and rep["resumed_from"] == 1 and rep["step"] == 3


def test_export_and_swapper(ws: Path) -> None:
    from doppel.train import export
    from doppel.train.swapper import load_swapper

    # The face model's own export and runtimes (its detail network is tested in test_detail.py).
    assert cli("train", ws, *PAIR, "--model", "m", *TINY, "--iters", "2", "--no-detail", "--json")[0] == 0
    mdir = ws / "models" / "m"
    path = export.export_onnx(mdir)
    assert path.is_file() and export.is_current(mdir)
    faces = np.random.default_rng(0).random((3, 64, 64, 3), dtype=np.float32)
    model = export.load_inference_model(mdir)
    assert export.parity(export.SwapPath(model), path, faces) < 1e-4
    a, b = load_swapper(mdir, runtime="torch"), load_swapper(mdir, runtime="onnx")
    (fa, ma), (fb, mb) = a.swap(faces), b.swap(faces)
    assert fa.shape == (3, 64, 64, 3) and ma.shape == (3, 64, 64, 1) and fa.dtype == np.float32
    np.testing.assert_allclose(fa, fb, atol=1e-4)
    np.testing.assert_allclose(ma, mb, atol=1e-4)
    assert a.resolution == 64 and a.face_type == "full"
    # new weights make the export stale; auto on CPU re-exports and uses ONNX Runtime
    from doppel.train import checkpoint

    with torch.no_grad():
        next(model.parameters()).add_(0.01)
    checkpoint.save_weights(mdir, model, {})
    assert not export.is_current(mdir)
    auto = load_swapper(mdir)  # times both runtimes on this CPU, keeps the faster, remembers the choice
    choice = json.loads((mdir / "runtime.json").read_text())
    assert type(auto).__name__ == {"onnx": "OnnxSwapper", "torch": "TorchSwapper"}[choice["runtime"]]
    assert export.is_current(mdir) and set(choice["seconds_per_batch"]) == {"torch", "onnx"}
    from doppel.core.errors import InputError

    with pytest.raises(InputError, match="shape"):
        auto.swap(np.zeros((1, 32, 32, 3), np.float32))


@pytest.mark.slow
def test_ddp_two_cpu_processes_gloo(ws: Path) -> None:
    """torchrun with two CPU processes (gloo): one report from rank 0, one model, world size 2."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "doppel.cli.app", "train", str(ws), *PAIR, "--model", "ddp", *TINY, "--iters", "3", "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(proc.stdout)
    assert rep["world"] == 2 and rep["step"] == 3
    assert rep["images_per_s"] > 0
    with Workspace.open(ws) as w:
        assert query(w, "SELECT step FROM models WHERE name = 'ddp'").fetchone()[0] == 3
    code, rep2, text = cli("train", ws, *PAIR, "--model", "ddp", "--iters", "4", "--json")  # resume, one process
    assert code == 0 and rep2 is not None and rep2["resumed_from"] == 3, text


def test_gan_and_gradient_accumulation(ws: Path) -> None:
    code, rep, text = cli("train", ws, *PAIR, "--model", "g", *TINY, "--gan-power", "0.1", "--accum", "2",
                          "--iters", "1", "--json")
    assert code == 0, text
    assert rep is not None and {"gan", "critic", "src", "dst", "mask"} <= set(rep["losses"])
    code, rep, text = cli("train", ws, *PAIR, "--model", "g", "--iters", "2", "--json")
    assert code == 0 and rep is not None and rep["resumed_from"] == 1, text
    state = _weights(ws / "models" / "g")
    assert any(k.startswith("critic.") for k in state) and any(k.startswith("critic_opt.") for k in state)


@pytest.mark.parametrize("n", [3, 40, 250, 1000])
def test_holdout_is_contiguous_runs(n: int) -> None:
    """Held-out faces come in runs of frames (no held-out frame between two training neighbours when the
    set is large enough), about the asked fraction, disjoint from training and together all faces."""
    from doppel.train.data import FaceSet

    ids = np.arange(n)
    fs = FaceSet(("a",), np.zeros((n, 2, 2, 3), np.uint8), np.zeros((n, 68, 2), np.float32), ids)
    train, held = fs.split(0.1, seed=3)
    assert len(train) > 0 and len(held) > 0
    assert sorted([*train.face_ids, *held.face_ids]) == list(ids)
    assert abs(len(held) - round(0.1 * n)) <= max(1, 0.02 * n)
    runs = np.split(held.face_ids, np.where(np.diff(held.face_ids) != 1)[0] + 1)
    if n >= 120:
        assert min(len(r) for r in runs) >= 12


def test_train_json_records_the_source_faces_no_step_trained_on(ws: Path) -> None:
    """What `doppel eval --self-swap` re-renders: this run's held-out source faces, less any that an earlier
    invocation of the same model trained on."""
    def held(model: str) -> list[int]:
        return json.loads((ws / "models" / model / "train.json").read_text())["holdout"]["src_faces"]

    with Workspace.open(ws) as w:
        src_ids = {f.id for f in w.faces.of("astronaut")}
    code, _, text = cli("train", ws, *PAIR, "--model", "h", *TINY, "--iters", "1", "--holdout", "0.25", "--json")
    assert code == 0, text
    first = held("h")
    assert first and set(first) <= src_ids and len(first) == round(0.25 * len(src_ids))
    code, _, text = cli("train", ws, *PAIR, "--model", "h", "--iters", "2", "--holdout", "0.25", "--json")
    assert code == 0 and held("h") == first, text  # resumed with the same split: still never trained on
    code, _, text = cli("train", ws, *PAIR, "--model", "h", "--iters", "3", "--json")
    assert code == 0 and held("h") == [], text  # resumed without a hold-out: every face has been trained on
    code, _, text = cli("train", ws, *PAIR, "--model", "h", "--iters", "4", "--holdout", "0.25", "--json")
    assert code == 0 and held("h") == [], text  # and stays so
    code, _, text = cli("train", ws, *PAIR, "--model", "n", *TINY, "--iters", "1", "--json")
    assert code == 0 and held("n") == [], text


def test_cpu_preset_brings_its_training_settings(ws: Path) -> None:
    from doppel.train.config import PRESETS
    from doppel.workflow.train import resolve_configs

    with Workspace.open(ws) as w:
        _, tcfg, name = resolve_configs(w, "fresh", None, {}, {})
        assert name == "cpu" and (tcfg.lr, tcfg.ema_decay, tcfg.batch) == (2e-4, 0.99, PRESETS["cpu"].batch)
        _, tcfg, _ = resolve_configs(w, "fresh", "gpu-128", {"_preset_given": True}, {"lr": 1e-3})
        assert (tcfg.lr, tcfg.ema_decay) == (1e-3, 0.999)


def test_late_share_is_decided_in_one_place() -> None:
    from doppel.workflow.train import LATE_SHARE, late_share

    assert late_share("cpu") == 0.25 and late_share("gpu-128") == 0.0  # the presets' defaults
    assert late_share("cpu", wanted=False) == 0.0 and late_share("gpu-256", wanted=True) == LATE_SHARE
    assert late_share("cpu", pretrain=True) == 0.0 and late_share(None) == 0.0


@pytest.mark.parametrize("flag", [["--minutes", "nan"], ["--minutes", "inf"], ["--minutes", "0"], ["--minutes", "-1"],
                                  ["--iters", "0"], ["--iters", "-5"], ["--holdout", "2"], ["--holdout", "-0.1"]])
def test_bad_budgets_are_refused_before_training(ws: Path, flag: list[str]) -> None:
    code, _, text = cli("train", ws, *PAIR, "--model", "m", *TINY, *flag)
    assert code == 2 and flag[0] in text and "Traceback" not in text
    assert not (ws / "models" / "m").exists()


def test_a_short_budget_and_a_busy_machine_are_reported(ws: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from doppel.train.loop import StepInfo
    from doppel.workflow import train as wt

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with caplog.at_level(logging.WARNING, logger="doppel.workflow.train"):
        code, rep, _ = cli("train", ws, *PAIR, "--model", "m", *TINY, "--minutes", "0.02", "--json")
    assert code == 0 and rep is not None
    assert any("bought" in r.message and "needs about 2000" in r.message for r in caplog.records)
    # A run far slower than this machine's best for the model warns once, after a minute of training.
    spec = wt.RunSpec(name="m", model=wt.model_config(), train=wt.train_config(), src=("a",), dst=("b",))
    wt._remember(wt._throughput_key(spec), 100.0)
    clock = [1000.0]
    monkeypatch.setattr(wt.time, "monotonic", lambda: clock[0])
    seen: list[int] = []
    watch = wt._Watch(spec, lambda info: seen.append(info.step))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="doppel.workflow.train"):
        for step in range(1, 60):
            clock[0] += 2.0
            watch(StepInfo(step, None, clock[0], 30.0, {}, None))
    assert len(seen) == 59
    slow = [r for r in caplog.records if "under half" in r.message]
    assert len(slow) == 1 and "30.0 images/s" in slow[0].message and "100.0" in slow[0].message


def test_late_stage_turns_random_warp_off_for_the_last_quarter(ws: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(ws, other)
    code, late, text = cli("train", ws, *PAIR, "--model", "m", *TINY, "--iters", "4", "--late", "--json")
    assert code == 0 and late is not None, text
    assert late["late_from"] == 3  # the last quarter of 4 steps: step index 3
    meta = json.loads((ws / "models" / "m" / "train.json").read_text())
    assert meta["late"] == 0.25 and meta["train"]["random_warp"] is True  # a resume starts warped again
    code, plain, text = cli("train", other, *PAIR, "--model", "m", *TINY, "--iters", "4", "--no-late", "--json")
    assert code == 0 and plain is not None and plain["late_from"] is None, text
    a, b = _weights(ws / "models" / "m"), _weights(other / "models" / "m")
    assert any(not torch.equal(a[k], b[k]) for k in a if k.startswith("model."))  # the last step saw other inputs
    code, _, text = cli("train", ws, "--pretrain", "--faces", "astronaut", "--model", "b", *TINY, "--iters", "1",
                        "--late")
    assert code != 0 and "--late is for a pair model" in text
