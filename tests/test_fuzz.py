"""Fuzzing that stays (issue 16): parsers, loaders, store readers and the video probe, fed random and
damaged input, may only succeed or raise doppel's own one-line errors.

The default run is short (CI); ``DOPPEL_FUZZ=long`` (what ``bench/bench_fuzz.py`` sets) runs many
more examples. A crash found here becomes a regular test beside the code it breaks.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import make_clip, noise_frames
from doppel.core.errors import DoppelError
from doppel.merge.settings import load_settings, parse_assignment, parse_override, validate_partial

LONG = os.environ.get("DOPPEL_FUZZ") == "long"
settings.register_profile("ci", max_examples=40, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.register_profile("long", max_examples=2000, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.load_profile("long" if LONG else "ci")

KEYS = ["mask_mode", "mask_region", "mask_erode", "mask_blur", "colour", "blend", "sharpen", "face_scale",
        "keep_original", "mask_polygons", "occlusion", "smoothing", "nope"]
VALUES = st.one_of(st.text(max_size=30), st.integers(-10**12, 10**12).map(str), st.floats().map(str),
                   st.sampled_from(["true", "false", "nan", "inf", "-inf", "1e400", "[]", "{}", '[{"mode": 1}]',
                                    '[{"mode": "include", "points": [[0, 0], [1, 1], [2, 2]]}]', "rct", "hull"]))


@given(st.sampled_from(KEYS), VALUES, st.sampled_from(["=", "", "==", " = "]))
def test_settings_assignments(key: str, value: str, sep: str) -> None:
    try:
        k, v = parse_assignment(f"{key}{sep}{value}")
        validate_partial({k: v})
    except DoppelError:
        pass


@given(st.text(max_size=60), st.lists(st.tuples(st.sampled_from(KEYS), VALUES), max_size=3))
def test_override_parser(span: str, pairs: list[tuple[str, str]]) -> None:
    body = ",".join(f"{k}={v}" for k, v in pairs)
    try:
        first, last, changes = parse_override(f"{span}:{body}")
        assert 0 <= first <= last and isinstance(changes, dict)
    except DoppelError:
        pass


@given(st.one_of(st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
                 st.dictionaries(st.sampled_from(KEYS), st.one_of(st.none(), st.booleans(), st.integers(),
                                                                  st.floats(), st.text(max_size=10)),
                                 max_size=4).map(json.dumps)))
def test_settings_file(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    path = tmp_path_factory.mktemp("s") / "settings.json"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    with contextlib.suppress(DoppelError):
        load_settings(path)


# -- model folders --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from doppel.train import checkpoint
    from doppel.train.config import model_config
    from doppel.train.models import build_model

    folder = tmp_path_factory.mktemp("model")
    cfg = model_config(arch="df", resolution=64, e_dims=8, ae_dims=16, d_dims=8, d_mask_dims=4)
    net = build_model(cfg)
    checkpoint.write_config(folder, cfg)
    checkpoint.save_weights(folder, net, {"step": "1"})
    opt = torch.optim.Adam(net.parameters())
    ot, os_ = checkpoint.optimizer_tensors(opt, "opt")
    checkpoint.save(folder, 1, {**checkpoint.module_tensors(net, "model"), **ot}, {"opt": os_, "elapsed_s": 1.0})
    return folder


def _damage(data: bytes, cut: float, flips: list[int]) -> bytes:
    out = bytearray(data[: max(0, int(len(data) * cut))])
    for pos in flips:
        if out:
            out[pos % len(out)] ^= 1 << (pos % 8)
    return bytes(out)


DAMAGE = (st.floats(0.0, 1.0), st.lists(st.integers(0, 10**9), max_size=6))


@given(*DAMAGE, st.sampled_from(["config.json", "model.safetensors", "checkpoints/step-000000001/state.json",
                                 "checkpoints/step-000000001/state.safetensors"]))
def test_model_folder_loaders(model_folder: Path, tmp_path_factory: pytest.TempPathFactory, cut: float,
                              flips: list[int], name: str) -> None:
    from doppel.train import checkpoint
    from doppel.train.models import build_model

    folder = tmp_path_factory.mktemp("m") / "model"
    shutil.copytree(model_folder, folder)
    target = folder / name
    target.write_bytes(_damage(target.read_bytes(), cut, flips))
    try:
        cfg = checkpoint.read_config(folder)
        checkpoint.load_weights(folder, build_model(cfg))
        checkpoint.load_latest(folder)
    except DoppelError:
        pass


# -- the store --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import facefixtures

    root = tmp_path_factory.mktemp("ws") / "ws"
    facefixtures.make_workspace(root, n=4, size=64).close()
    return root


COLUMNS = ["landmarks", "landmarks_smooth", "transform", "embedding"]


@given(st.sampled_from(COLUMNS), st.binary(max_size=700))
def test_store_readers_on_damaged_rows(workspace: Path, tmp_path_factory: pytest.TempPathFactory, column: str,
                                       blob: bytes) -> None:
    from doppel.store import Workspace

    root = tmp_path_factory.mktemp("w") / "ws"
    shutil.copytree(workspace, root)
    with sqlite3.connect(root / "doppel.db") as conn:
        conn.execute(f"UPDATE faces SET {column} = ? WHERE id = 1", (blob,))
    with Workspace.open(root) as ws:
        try:
            for name in ws.identities.names():
                ws.faces.of(name)
        except DoppelError:
            pass


@given(*DAMAGE)
def test_workspace_open_on_a_damaged_database(workspace: Path, tmp_path_factory: pytest.TempPathFactory,
                                              cut: float, flips: list[int]) -> None:
    from doppel.store import Workspace

    root = tmp_path_factory.mktemp("w") / "ws"
    shutil.copytree(workspace, root)
    db = root / "doppel.db"
    db.write_bytes(_damage(db.read_bytes(), cut, flips))
    try:
        with Workspace.open(root) as ws:
            for name in ws.identities.names():
                ws.faces.of(name)
            ws.renders.all()
            ws.consents.of()
    except DoppelError:
        pass


# -- media ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clip") / "in.mp4", noise_frames(12, 48, 64))


@given(*DAMAGE)
def test_video_probe_and_read_on_damaged_files(clip: Path, tmp_path_factory: pytest.TempPathFactory, cut: float,
                                               flips: list[int]) -> None:
    from doppel.io.video import probe, read_frames

    path = tmp_path_factory.mktemp("v") / "damaged.mp4"
    path.write_bytes(_damage(clip.read_bytes(), cut, flips))
    try:
        info = probe(path)
        frames = [f.image for f in read_frames(path)]
        assert all(f.shape == (info.height, info.width, 3) and f.dtype == np.uint8 for f in frames)
    except DoppelError:
        pass
