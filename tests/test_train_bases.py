"""Shipped base models: a new pair model starts from the one of its architecture, unless told otherwise;
the base doppel ships is the `cpu` preset's, small, intact, documented, and has learned faces."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from doppel.ops.align import estimate_transform, transform_points, warp_to_face
from doppel.train import bases, checkpoint
from doppel.train.config import PRESETS
from doppel.train.data import face_hull_mask
from doppel.train.models import as_face_model, build_model
from test_train_loop import PAIR, TINY, cli, template, ws  # noqa: F401  (fixtures)

TINY_CFG = {"resolution": 64, "e_dims": 8, "ae_dims": 16, "d_dims": 8, "d_mask_dims": 4}


@pytest.fixture
def tiny_base(ws: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:  # noqa: F811
    """A tiny pretrained base exported into a stand-in for the package's bases folder as ``tiny``."""
    code, _, text = cli("train", ws, "--pretrain", "--faces", "astronaut", "--faces", "hopper", "--model", "pre",
                        *TINY, "--iters", "2", "--seed", "7", "--json")  # not the pair runs' seed-0 start
    assert code == 0, text
    shipped = tmp_path / "bases"
    monkeypatch.setattr(bases, "BASES_DIR", shipped)
    bases.export(ws / "models" / "pre", shipped / "tiny", {"steps": 2, "held_out": ["nobody"]})
    return shipped / "tiny"


def _first_weights(model_dir: Path) -> dict[str, torch.Tensor]:
    ckpt = sorted((model_dir / "checkpoints").iterdir())[0]
    return {k[len("model."):]: v for k, v in load_file(str(ckpt / "state.safetensors")).items()
            if k.startswith("model.")}


def test_export_writes_half_precision_weights_that_load_and_check(tiny_base: Path) -> None:
    tensors = load_file(str(tiny_base / checkpoint.WEIGHTS))
    assert {t.dtype for t in tensors.values() if t.is_floating_point()} == {torch.float16}
    model = build_model(checkpoint.read_config(tiny_base))
    checkpoint.load_weights(tiny_base, model)  # checksum verified, fp16 copied into the fp32 model
    assert next(model.parameters()).dtype == torch.float32
    meta = json.loads((tiny_base / checkpoint.TRAIN).read_text())
    assert meta["pretrain"] is True and meta["src"] == ["astronaut", "hopper"] and meta["held_out"] == ["nobody"]
    # a flipped bit is caught
    raw = bytearray((tiny_base / checkpoint.WEIGHTS).read_bytes())
    raw[-3] ^= 0x10
    (tiny_base / checkpoint.WEIGHTS).write_bytes(bytes(raw))
    with pytest.raises(Exception, match="damaged"):
        checkpoint.load_weights(tiny_base, model)


def test_new_pair_model_starts_from_the_matching_shipped_base(ws: Path, tiny_base: Path) -> None:  # noqa: F811
    code, rep, text = cli("train", ws, *PAIR, "--model", "m", *TINY, "--iters", "1", "--json")
    assert code == 0, text
    assert rep is not None and rep["base"] == "doppel:tiny"
    start = _first_weights(ws / "models" / "m")
    base = load_file(str(tiny_base / checkpoint.WEIGHTS))
    k = "encoder.down.0.conv.weight"
    assert (start[k] - base[k].float()).abs().max() < 0.01  # one step away from the base
    # resuming keeps its own weights and its record of the base
    code, rep, text = cli("train", ws, *PAIR, "--model", "m", *TINY, "--iters", "2", "--json")
    assert code == 0 and rep is not None and rep["resumed_from"] == 1 and rep["base"] == "doppel:tiny", text
    # --no-base: random weights, no base recorded
    code, rep, text = cli("train", ws, *PAIR, "--model", "scratch", *TINY, "--iters", "1", "--no-base", "--json")
    assert code == 0 and rep is not None and rep["base"] is None, text
    assert (_first_weights(ws / "models" / "scratch")[k] - base[k].float()).abs().max() > 0.05
    # another capacity: no shipped base fits, so it trains from scratch
    code, rep, text = cli("train", ws, *PAIR, "--model", "wide", *TINY, "--d-dims", "16", "--iters", "1", "--json")
    assert code == 0 and rep is not None and rep["base"] is None, text
    # named explicitly
    code, rep, text = cli("train", ws, *PAIR, "--model", "named", *TINY, "--base", "doppel:tiny", "--iters", "1",
                          "--json")
    assert code == 0 and rep is not None and rep["base"] == "doppel:tiny", text


@pytest.mark.parametrize(("args", "message"), [
    (["--base", "doppel:nope"], "no shipped base model 'doppel:nope'; doppel ships: doppel:tiny"),
    (["--base", "doppel:tiny", "--no-base"], "--base and --no-base contradict"),
])
def test_bad_base_choices_fail_in_one_line(ws: Path, tiny_base: Path, args: list[str], message: str) -> None:  # noqa: F811
    code, _, text = cli("train", ws, *PAIR, "--model", "x", *TINY, "--iters", "1", *args)
    assert code == 2 and message in text, text
    assert not (ws / "models" / "x").exists()


# --- the base doppel ships ---------------------------------------------------------------------------
SHIPPED = bases.BASES_DIR / "cpu"
needs_shipped = pytest.mark.skipif(not (SHIPPED / checkpoint.WEIGHTS).is_file(), reason="no shipped cpu base")


@needs_shipped
def test_shipped_base_is_the_cpu_presets_small_and_documented() -> None:
    assert bases.for_config(PRESETS["cpu"].model) == ("cpu", SHIPPED)
    assert (SHIPPED / checkpoint.WEIGHTS).stat().st_size <= 50 * 2**20
    meta = json.loads((SHIPPED / checkpoint.TRAIN).read_text())
    card = (SHIPPED / "DATA_CARD.md").read_text()
    assert meta["steps"] > 0 and meta["src"]
    for name in [*meta["src"], *meta["held_out"]]:  # every person it learned from, and those kept out
        assert re.search(rf"\b{re.escape(name)}\b", card), name
    assert not set(meta["src"]) & set(meta["held_out"])
    people = json.loads((SHIPPED / bases.PEOPLE).read_text())["people"]  # who it knows, for train's warning
    assert set(people) == set(meta["src"]) and all(len(v) == 128 for v in people.values())


@needs_shipped
def test_shipped_base_has_learned_faces() -> None:
    """It reconstructs faces it never saw (the two public-domain portraits), inside the face hull its loss
    covers, clearly better than random weights (a blurred likeness after 1,794 steps: its data card)."""
    import facefixtures

    cfg = PRESETS["cpu"].model
    faces, hulls = [], []
    for name in ("astronaut", "hopper"):
        for frame, lm in facefixtures.jittered_frames(name, 3, 0):
            matrix = estimate_transform(lm, cfg.resolution, "full")
            faces.append(warp_to_face(frame, matrix, cfg.resolution))
            hulls.append(face_hull_mask(transform_points(lm, matrix), cfg.resolution) > 0)
    x = torch.from_numpy(np.stack(faces)).permute(0, 3, 1, 2).float() / 255.0
    hull = torch.from_numpy(np.stack(hulls))[:, None].float()

    def error(model: torch.nn.Module) -> float:
        with torch.no_grad():
            out = model(x, x)
        return float(((out.src - x).abs() * hull).sum() / (hull.sum() * 3))

    torch.manual_seed(0)
    scratch = build_model(cfg).eval()
    based = build_model(cfg).eval()
    checkpoint.load_weights(SHIPPED, based)
    as_face_model(based)
    assert error(based) < 0.8 * error(scratch)  # measured: 0.17 against 0.24
    assert error(based) < 0.2  # mean absolute error inside the face, in [0, 1] units


def test_copying_a_shipped_base_elsewhere_records_its_path(ws: Path, tiny_base: Path, tmp_path: Path) -> None:  # noqa: F811
    elsewhere = tmp_path / "mine"
    shutil.copytree(tiny_base, elsewhere)
    assert bases.label(elsewhere) == str(elsewhere) and bases.label(tiny_base) == "doppel:tiny"


def _embed(ws_root: Path, identity: str, vec: np.ndarray, seed: int) -> None:
    """Give every face of ``identity`` an identity embedding near ``vec`` (the fixtures have none)."""
    from conftest import raw_db
    from doppel.store import Workspace
    from doppel.store.db import to_blob

    rng = np.random.default_rng(seed)
    with Workspace.open(ws_root) as w, raw_db(w) as c:
        rows = c.execute("SELECT f.id FROM faces f JOIN identities i ON i.id = f.identity_id WHERE i.name = ?",
                         (identity,)).fetchall()
        for (fid,) in rows:
            c.execute("UPDATE faces SET embedding = ? WHERE id = ?",
                      (to_blob(vec + rng.normal(0, 0.01, vec.shape)), fid))


def test_a_pair_run_is_warned_when_its_base_already_knows_one_of_its_people(ws: Path, tmp_path: Path) -> None:  # noqa: F811
    astronaut, hopper = np.random.default_rng(0).normal(0, 0.1, (2, 128))  # ~1.4 apart, as two people are
    _embed(ws, "astronaut", astronaut, 1)
    _embed(ws, "hopper", hopper, 2)
    # a base pretrained on hopper alone records who it learned, and its export carries that along
    code, _, text = cli("train", ws, "--pretrain", "--faces", "hopper", "--model", "pre", *TINY, "--iters", "1",
                        "--json")
    assert code == 0, text
    people = json.loads((ws / "models" / "pre" / bases.PEOPLE).read_text())["people"]
    assert list(people) == ["hopper"] and np.allclose(people["hopper"], hopper, atol=0.01)
    base = bases.export(ws / "models" / "pre", tmp_path / "base", {"steps": 1})
    assert json.loads((base / bases.PEOPLE).read_text())["people"] == people
    # astronaut -> hopper from it: hopper is known (warned, in --json and in text), astronaut is not
    code, rep, text = cli("train", ws, *PAIR, "--model", "m", *TINY, "--iters", "1", "--base", base, "--json")
    assert code == 0 and rep is not None, text
    assert [(k["identity"], k["person"]) for k in rep["base_knows"]] == [("hopper", "hopper")]
    assert rep["base_knows"][0]["distance"] < 0.05
    code, _, text = cli("train", ws, *PAIR, "--model", "m2", *TINY, "--iters", "1", "--base", base)
    assert code == 0 and "looks like hopper" in text and "--no-base" in text, text
    # a base that learned someone else warns of nobody; nor does one that does not say whom it learned
    (base / bases.PEOPLE).write_text(json.dumps({"people": {"other": list(-hopper)}}))
    code, rep, text = cli("train", ws, *PAIR, "--model", "m3", *TINY, "--iters", "1", "--base", base, "--json")
    assert code == 0 and rep is not None and rep["base_knows"] == [], text
    (base / bases.PEOPLE).unlink()
    code, rep, text = cli("train", ws, *PAIR, "--model", "m4", *TINY, "--iters", "1", "--base", base, "--json")
    assert code == 0 and rep is not None and rep["base_knows"] == [], text
