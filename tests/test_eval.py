"""`doppel eval` end to end on synthetic clips with known answers (built from public-domain portraits)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from doppel.cli.app import app
from doppel.demo.media import _FACE_BOX, Motion, SyntheticClip, synth_frames, write_clip
from doppel.eval.pipeline import EvalRequest
from doppel.extract.config import content_hash
from doppel.io.image import read_image
from doppel.store import Workspace
from doppel.workflow.evaluate import evaluate
from doppel.workflow.extract import extract as extract_clip
from doppel.workflow.workspace import create_workspace

FRAMES = 24
MOTION = Motion(period=24)


def _variant(clip: SyntheticClip, fn) -> SyntheticClip:  # type: ignore[no-untyped-def]
    return SyntheticClip(clip.name, [fn(f) for f in clip.frames], clip.transforms, clip.present)


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A workspace with two identities extracted, and clips: astronaut, its shifted and re-coloured
    copies, and grace_hopper moving exactly like the astronaut (a perfect "swap")."""
    d = tmp_path_factory.mktemp("eval")
    astro = synth_frames("astronaut", FRAMES, 320, 240, motion=MOTION, seed=3)
    hopper = synth_frames("grace_hopper", FRAMES, 320, 240, motion=MOTION, seed=3)
    blank = [f.copy() for f in astro.frames]
    x0, y0, x1, y1 = _FACE_BOX["astronaut"]
    for i in range(8, 16):  # the face painted over: no face to find in the "merged" clip there
        (bx0, by0), (bx1, by1) = astro.true_points(np.array([[x0, y0], [x1, y1]]))[i].astype(int)
        blank[i][max(0, by0 - 10):by1 + 10, max(0, bx0 - 10):bx1 + 10] = 128
    clips = {
        "blank": write_clip(d / "blank.mp4", SyntheticClip("blank", blank, astro.transforms, astro.present),
                            audio=False, crf=12),
        "astro": write_clip(d / "astro.mp4", astro, audio=False, crf=12),
        "hopper": write_clip(d / "hopper.mp4", hopper, audio=False, crf=12),
        "shift": write_clip(d / "shift.mp4", _variant(astro, lambda f: np.roll(f, 6, axis=1)), audio=False, crf=12),
        "blur": write_clip(d / "blur.mp4", _variant(astro, lambda f: cv2.GaussianBlur(f, (0, 0), 1.5)), audio=False,
                           crf=12),
        "tint": write_clip(d / "tint.mp4", _variant(
            astro, lambda f: np.clip(f.astype(np.int16) + np.array([18, 6, -12]), 0, 255).astype(np.uint8)),
            audio=False, crf=12),
    }
    with create_workspace(d / "ws") as ws:
        extract_clip(ws, "astronaut", clips["astro"])
        extract_clip(ws, "hopper", clips["hopper"])
    return {**clips, "ws": d / "ws", "dir": d}


def _eval(scene: dict[str, Path], merged: str, src: str, dst: str | None, embed_every: int = 4,
          sheet: bool = False):  # type: ignore[no-untyped-def]
    with Workspace.open(scene["ws"]) as ws:
        return evaluate(ws, EvalRequest(original=scene["astro"], merged=scene[merged], src=src, dst=dst,
                                        embed_every=embed_every,
                                        sheet=scene["dir"] / f"{merged}.png" if sheet else None))


def test_clip_against_itself_has_zero_error(scene: dict[str, Path]) -> None:
    r = _eval(scene, "astro", "astronaut", "hopper", sheet=True)
    assert r.frames == r.frames_compared == FRAMES
    assert r.expression_nme == 0.0 and r.pose_error_deg == 0.0
    assert r.flicker_ratio == pytest.approx(1.0) and r.seam_score == pytest.approx(1.0)
    assert r.jitter_px == pytest.approx(r.jitter_px_input)
    assert r.id_retrieval == 1.0 and r.id_src_wins == 1.0 and r.id_match_src == 1.0
    assert r.id_sim_src == pytest.approx(r.id_sim_src_input) and r.id_sim_src > 0.9
    assert r.sharpness_ratio == pytest.approx(1.0) and r.sharpness_p10 == pytest.approx(1.0)
    assert r.warp_error_ratio == pytest.approx(1.0) and r.warp_error_normalised == pytest.approx(1.0)
    assert r.warp_pairs >= FRAMES - 2 and r.warp_error_p95 == pytest.approx(1.0)
    assert r.gaze_corr is None or r.gaze_corr == pytest.approx(1.0)
    assert all(row.sharpness == pytest.approx(1.0) for row in r.per_frame)
    sheet = read_image(Path(r.sheet))
    assert sheet.ndim == 3 and sheet.shape[1] > 6 * 150
    from doppel.eval.sheet import _LABEL_H, TILE
    from doppel.provenance.watermark import detect, render_payload

    y0 = 28 + TILE + _LABEL_H + 4  # the title, the top row, the gap; then the first merged face after the source
    tile = sheet[y0:y0 + TILE, TILE + 4:2 * TILE + 4]
    found = detect([tile])  # a swapped face cut out of the sheet carries the mark itself
    assert found.detected and found.payload == render_payload(f"eval:{Path(r.merged).name}")


def test_shifted_copy_moves_landmarks_by_the_shift(scene: dict[str, Path]) -> None:
    r = _eval(scene, "shift", "astronaut", "hopper")
    iod = np.median([np.linalg.norm(np.subtract(*_corners(scene, i))) for i in range(0, FRAMES, 6)])
    assert r.expression_nme == pytest.approx(6.0 / iod, rel=0.2)
    assert r.pose_error_deg < 3.0
    assert r.id_retrieval == 1.0  # same person, moved


def test_recoloured_copy_keeps_identity_and_landmarks(scene: dict[str, Path]) -> None:
    r = _eval(scene, "tint", "astronaut", "hopper")
    assert r.expression_nme < 0.02
    assert r.id_retrieval == 1.0 and r.id_sim_src > 0.9
    assert r.flicker_ratio == pytest.approx(1.0, abs=0.15)  # a constant offset adds no frame-to-frame change
    assert r.seam_score == pytest.approx(1.0, abs=0.15)  # the whole frame changed, so no edge at the mask


def test_a_blurred_face_fails_on_detail_where_flicker_would_pass_it(scene: dict[str, Path]) -> None:
    """Why flicker is no longer the temporal bar: a blur lowers it (and the plain warp error); the sharpness
    ratio and the detail-normalised warp error see the blur."""
    r = _eval(scene, "blur", "astronaut", "hopper", embed_every=0)
    assert r.flicker_ratio is not None and r.flicker_ratio < 0.9
    assert r.warp_error_ratio is not None and r.warp_error_ratio < 1.0
    assert r.sharpness_ratio is not None and r.sharpness_ratio < 0.6
    assert r.sharpness_p90 is not None and r.sharpness_p90 < 0.8
    assert r.warp_error_normalised is not None and r.warp_error_normalised > 1.1


def test_other_person_on_the_same_motion_is_retrieved_as_the_source(scene: dict[str, Path]) -> None:
    r = _eval(scene, "hopper", "hopper", "astronaut", embed_every=3)
    assert r.id_retrieval == 1.0 and r.id_src_wins == 1.0
    assert r.id_retrieval_input == 0.0  # the original is the destination, not the source
    assert r.id_match_src == 1.0 and r.id_match_src_input == 0.0
    assert r.id_sim_src > r.id_sim_dst
    assert r.frames_embedded == len(range(0, r.frames_compared, 3))


def test_frames_where_the_merge_lost_the_face_count_as_identity_failures(scene: dict[str, Path]) -> None:
    r = _eval(scene, "blank", "astronaut", "hopper", embed_every=1)
    assert r.frames_face_lost >= 4 and r.frames_compared + r.frames_face_lost == FRAMES
    assert r.frames_embedded == FRAMES
    lost = [row for row in r.per_frame if row.nme is None]
    assert len(lost) == r.frames_face_lost and all(row.sim_src is None for row in lost)
    # the same person everywhere else, so exactly the lost frames are failures
    assert r.id_retrieval == pytest.approx(1 - r.frames_face_lost / FRAMES)
    assert r.id_src_wins == pytest.approx(1 - r.frames_face_lost / FRAMES)


def _corners(scene: dict[str, Path], i: int) -> tuple[np.ndarray, np.ndarray]:

    with Workspace.open(scene["ws"]) as ws:
        f = ws.faces.of("astronaut")[i]
    return f.landmarks[36], f.landmarks[45]


def test_cli_writes_json_and_sheet(scene: dict[str, Path]) -> None:
    out = scene["dir"] / "cli.json"
    result = CliRunner().invoke(app, ["eval", str(scene["ws"]), "--original", str(scene["astro"]), "--merged",
                                      str(scene["astro"]), "--src", "astronaut", "--embed-every", "0",
                                      "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    for key in ("id_sim_src", "id_sim_dst", "id_retrieval", "expression_nme", "pose_error_deg", "mouth_corr",
                "eye_corr", "jitter_px", "flicker_ratio", "seam_score", "sharpness_ratio", "warp_error_ratio",
                "warp_error_p95", "warp_error_normalised", "gaze_corr"):
        assert key in data
    assert data["expression_nme"] == 0.0 and data["id_sim_src"] is None  # identity skipped with --embed-every 0
    assert data["sharpness_ratio"] == 1.0 and data["warp_error_ratio"] == 1.0 and data["self_swap"] is None
    assert Path(data["sheet"]).is_file()


def test_cli_bad_input_is_one_line(scene: dict[str, Path], tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(app, ["eval", str(scene["ws"]), "--original", str(scene["astro"]), "--merged",
                                  str(tmp_path / "nope.mp4"), "--src", "astronaut"])
    assert missing.exit_code != 0 and "nope.mp4: no such file" in missing.output
    unknown = runner.invoke(app, ["eval", str(scene["ws"]), "--original", str(scene["astro"]), "--merged",
                                  str(scene["astro"]), "--src", "nobody"])
    assert unknown.exit_code != 0 and "nobody" in unknown.output
    neither = runner.invoke(app, ["eval", str(scene["ws"])])
    assert neither.exit_code != 0 and "--render" in neither.output


def test_render_mode_uses_the_models_identities_and_swapped_frames(scene: dict[str, Path]) -> None:
    """A render row pointing at the astronaut clip with the hopper clip as its output (a perfect swap
    of hopper onto the astronaut's motion); frames 0-3 were passed through."""
    from doppel.store.records import FrameRow

    with Workspace.open(scene["ws"]) as ws:
        clip = ws.clips.by_hash(content_hash(scene["astro"]))
        assert clip is not None
        ws.models.register("m", folder_rel="models/m", arch="df", preset=None, resolution=64, face_type="full",
                           src="hopper", dst="astronaut", base=None, step=1)
        model = ws.models.get("m")
        assert model is not None
        render = ws.renders.create(uid="0123456789abcdef", model_id=model.id, clip_id=clip.id,
                                   output_path=str(scene["hopper"].resolve()), settings={}, settings_hash="x",
                                   watermark_payload=None, consent_hash=None, overrides=())
        ws.renders.record_frames(render.id, [FrameRow(i, "passthrough" if i < 4 else "swapped", None, False)
                                             for i in range(FRAMES)])
        ws.renders.finish(render.id, "done")
    out = scene["dir"] / "render.json"
    result = CliRunner().invoke(app, ["eval", str(scene["ws"]), "--render", render.uid, "--embed-every", "4",
                                      "--out", str(out), "--sheet", str(scene["dir"] / "render.png")])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert (data["src"], data["dst"], data["render"]) == ("hopper", "astronaut", render.uid)
    assert data["frames_compared"] == FRAMES - 4 and min(r["frame"] for r in data["per_frame"]) == 4
    assert data["id_retrieval"] == 1.0 and data["id_retrieval_input"] == 0.0
    assert "id_sim_src" in result.output  # the table was printed


@pytest.fixture(scope="module")
def held_model(scene: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the scene's workspace with a tiny 1-step model astronaut -> hopper that held a quarter of
    the astronaut's faces out of training (and one, ``all``, that held none)."""
    import shutil

    from doppel.provenance.consent import add_consent
    from doppel.train.config import model_config, train_config
    from doppel.train.loop import RunSpec
    from doppel.workflow.train import train

    root = tmp_path_factory.mktemp("selfswap") / "ws"
    shutil.copytree(scene["ws"], root)
    cfg = model_config(resolution=64, e_dims=8, ae_dims=16, d_dims=8, d_mask_dims=4)
    with Workspace.open(root) as ws:
        add_consent(ws, "astronaut", subject="astronaut (public-domain sample photo)", scope="doppel tests",
                    basis="public-domain-demo")
        for name, holdout in (("held", 0.25), ("all", 0.0)):
            train(ws, RunSpec(name=name, model=cfg, train=train_config(batch=2, workers=0), src=("astronaut",),
                              dst=("hopper",), iters=1, holdout=holdout))
    return root


def test_self_swap_re_renders_only_the_held_out_frames(held_model: Path, scene: dict[str, Path],
                                                       tmp_path: Path) -> None:
    from doppel.eval.selfswap import compare
    from doppel.merge.settings import MergeSettings
    from doppel.workflow.evaluate import held_out_faces, self_swap

    with Workspace.open(held_model) as ws:
        model = ws.models.get("held")
        assert model is not None
        faces = held_out_faces(ws, model)
        rep = self_swap(ws, "held", tmp_path / "self.mp4", sheet=tmp_path / "self.png")
        sharpened = self_swap(ws, "held", tmp_path / "sharp.mp4", settings=MergeSettings(sharpen=2.0))
        others = {f.frame_index: f.landmarks_smooth for f in ws.faces.of("astronaut")
                  if f.id not in {h.id for h in faces}}
    held = sorted(f.frame_index for f in faces)
    assert len(held) == round(0.25 * FRAMES) and [r.frame for r in rep.per_frame] == held
    assert rep.frames == len(held) and rep.render is not None and Path(rep.sheet or "").is_file()
    # every other frame kept its original face (only the watermark and the re-encode touch it) ...
    kept = compare(scene["astro"], tmp_path / "self.mp4", others, model="held")
    assert kept.ssim is not None and kept.ssim > 0.95 and kept.passes
    # ... while a 1-step model's face (a blur, colour-matched by the merge) is far from the truth
    assert rep.psnr is not None and kept.psnr is not None and rep.psnr < kept.psnr - 3
    assert rep.gmsd is not None and kept.gmsd is not None and rep.gmsd > kept.gmsd + 0.02
    assert rep.ssim is not None and rep.ssim < kept.ssim - 0.03
    # the merge's sharpen setting reaches the self-swap: more apparent detail, not closer to the truth
    assert sharpened.sharpness_ratio > rep.sharpness_ratio and sharpened.gmsd > rep.gmsd  # type: ignore[operator]


def test_self_swap_of_the_truth_passes_and_of_a_blur_fails(scene: dict[str, Path]) -> None:
    from doppel.eval.selfswap import compare

    with Workspace.open(scene["ws"]) as ws:
        lms = {f.frame_index: f.landmarks_smooth for f in ws.faces.of("astronaut")}
    same = compare(scene["astro"], scene["astro"], lms, model="m")
    assert same.passes and same.ssim == pytest.approx(1.0) and same.sharpness_ratio == pytest.approx(1.0)
    blur = compare(scene["astro"], scene["blur"], lms, model="m")
    assert not blur.passes and blur.sharpness_ratio is not None and blur.sharpness_ratio < 0.6
    assert blur.gmsd is not None and blur.gmsd > same.gmsd  # type: ignore[operator]


def test_cli_self_swap(held_model: Path, scene: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    merged = tmp_path / "astro.mp4"
    shutil.copyfile(scene["astro"], merged)
    args = ["eval", str(held_model), "--original", str(scene["astro"]), "--merged", str(merged), "--src", "astronaut",
            "--embed-every", "0"]
    res = CliRunner().invoke(app, [*args, "--self-swap", "--model", "held", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)["self_swap"]
    assert data["frames"] == round(0.25 * FRAMES) and data["passes"] is False
    assert {"ssim", "psnr", "gmsd", "sharpness_ratio", "per_frame", "render"} <= set(data)
    assert (tmp_path / "astro.self-swap.mp4").is_file() and (tmp_path / "astro.self-swap.png").is_file()
    table = CliRunner().invoke(app, [*args, "--self-swap", "--model", "held"])
    assert table.exit_code == 0 and "self_swap_ssim" in table.output, table.output
    none = CliRunner().invoke(app, [*args, "--self-swap", "--model", "all"])
    assert none.exit_code != 0 and "recorded no held-out" in none.output
    nomodel = CliRunner().invoke(app, [*args, "--self-swap"])
    assert nomodel.exit_code != 0 and "--self-swap needs a model" in nomodel.output


def test_sheet_tiles_show_faces_at_about_their_size() -> None:
    from doppel.eval.sheet import TILE, contact_sheet, sheet_tile

    assert sheet_tile([]) == TILE and sheet_tile([(0, 0, 40, 50)]) == TILE  # small faces: at least TILE
    assert sheet_tile([(0, 0, 200, 190), (10, 0, 210, 200), (0, 0, 900, 900)]) == 360  # the median face x 1.8
    assert sheet_tile([(0, 0, 1000, 1000)]) == 2 * TILE
    tiles = [np.zeros((360, 360, 3), np.uint8)] * 2
    assert contact_sheet(tiles, tiles, ["a", "b"]).shape[1] == 2 * 360 + 4
    with pytest.raises(ValueError, match="tiles must all be"):
        contact_sheet(tiles, [np.zeros((192, 192, 3), np.uint8)] * 2, ["a", "b"])
