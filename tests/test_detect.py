"""`doppel detect`: self-blended fakes, the detector's weights on disk, calibration and the command itself.

Fast and CPU-only: a small untrained network stands in for the shipped detector where a test is about
plumbing (the JSON report, heatmaps, errors), and the faces are the public-domain sample photos of
``facefixtures.py``. Nothing here reads ``../shared/media``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from conftest import make_clip
from doppel.cli.app import app
from doppel.core.errors import InputError
from doppel.detect.calibrate import (
    CALIBRATION,
    Calibration,
    calibrate,
    load_calibration,
    save_calibration,
    threshold_for,
)
from doppel.detect.data import FaceSet, Mix, camera_chain, make_batch
from doppel.detect.faces import crop_face
from doppel.detect.infer import Detector, clip_score
from doppel.detect.model import (
    CONFIG,
    WEIGHTS,
    WEIGHTS_DIR,
    DetectorConfig,
    FaceForensicsNet,
    load,
    save,
    top_mean,
)
from doppel.detect.sbi import SBIParams, blend_mask, boundary, draw_params, self_blend
from doppel.detect.train import TrainSettings, train
from doppel.io.image import read_image
from facefixtures import jittered_frames, sample_image, sample_landmarks

SMALL = DetectorConfig(input_size=64, widths=(8, 8, 8, 8, 8))


def _face(size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """The astronaut's aligned ``whole`` crop and its landmarks in crop pixels."""
    crop, _, lm = crop_face(sample_image("astronaut"), sample_landmarks("astronaut"), size, "whole")
    return crop, lm


def _params(**change: object) -> SBIParams:
    base = SBIParams(gain=(1.08, 0.95, 1.05), offset=(0.04, -0.03, 0.02), contrast=1.1, sharpness=-0.006, down=1.0,
                     shift=(0.01, -0.01), scale=1.02, lift=0.1, grow=0.0, warp=0.0, warp_seed=1, feather=0.02,
                     opacity=1.0, swap_roles=False)
    return SBIParams(**{**base.__dict__, **change})  # type: ignore[arg-type]


# -- self-blended images --------------------------------------------------------------------------------
def test_self_blend_changes_the_face_only_inside_its_mask() -> None:
    crop, lm = _face()
    fake, mask = self_blend(crop, lm, _params())
    assert fake.shape == crop.shape and fake.dtype == np.uint8
    assert mask.shape == crop.shape[:2] and mask.dtype == np.float32
    assert mask.min() >= 0.0 and mask.max() <= 1.0
    outside, inside = mask == 0, mask > 0.99
    assert outside.mean() > 0.2 and inside.mean() > 0.1      # a face-sized hull, not all or nothing
    assert np.array_equal(fake[outside], crop[outside])     # the original where the mask is 0
    diff = np.abs(fake.astype(int) - crop.astype(int)).mean(axis=2)
    assert diff[inside].mean() > 4.0                         # the changed copy where it is 1
    # the blend's centre is the face's: inside the landmarks' bounding box
    ys, xs = np.nonzero(inside)
    x0, y0 = lm.min(0)
    x1, y1 = lm.max(0)
    assert x0 < xs.mean() < x1 and y0 < ys.mean() < y1


def test_self_blend_swapped_roles_keeps_the_face_and_changes_the_rest() -> None:
    crop, lm = _face()
    fake, mask = self_blend(crop, lm, _params(swap_roles=True))
    inside, outside = mask > 0.99, mask == 0
    assert np.abs(fake[inside].astype(int) - crop[inside].astype(int)).max() <= 1
    assert np.abs(fake[outside].astype(int) - crop[outside].astype(int)).mean() > 4.0


def test_mask_opacity_growth_and_boundary() -> None:
    _, lm = _face()
    half = blend_mask(lm, 128, _params(opacity=0.5))
    assert half.max() == pytest.approx(0.5, abs=1e-3)
    grown = blend_mask(lm, 128, _params(grow=0.03, feather=0.005))
    shrunk = blend_mask(lm, 128, _params(grow=-0.04, feather=0.005))
    assert (grown > 0.5).sum() > (blend_mask(lm, 128, _params(feather=0.005)) > 0.5).sum() > (shrunk > 0.5).sum()
    m = blend_mask(lm, 128, _params())
    b = boundary(m)
    assert b.max() <= 1.0 + 1e-6 and b.min() >= 0.0
    assert np.all(b[m == 0] == 0) and np.all(b[m >= 0.999] < 0.01)
    assert b.max() > 0.9                                    # the edge itself is marked


def test_draw_params_are_replayable_and_in_range() -> None:
    a = [draw_params(np.random.default_rng(3)) for _ in range(2)]
    assert a[0] == a[1]
    crop, lm = _face()
    assert np.array_equal(self_blend(crop, lm, a[0])[0], self_blend(crop, lm, a[1])[0])
    rng = np.random.default_rng(0)
    for _ in range(200):
        p = draw_params(rng)
        assert all(0.9 <= g <= 1.1 for g in p.gain) and 0.85 <= p.contrast <= 1.15
        assert 0.3 <= p.down <= 1.0 and 0.5 <= p.opacity <= 1.0 and 0.95 <= p.scale <= 1.05


def test_self_blend_refuses_a_non_crop() -> None:
    _, lm = _face()
    with pytest.raises(ValueError, match="square RGB uint8"):
        self_blend(np.zeros((64, 80, 3), np.uint8), lm, _params())
    with pytest.raises(ValueError, match="square RGB uint8"):
        self_blend(np.zeros((64, 64, 3), np.float32), lm, _params())


def test_training_batch_labels_match_what_was_done() -> None:
    faces = []
    for person, sample in (("a", "astronaut"), ("h", "hopper")):
        crops, marks = [], []
        for frame, lm in jittered_frames(sample, 4):
            c, _, m = crop_face(frame, lm, 64, "whole")
            crops.append(c)
            marks.append(m)
        faces.append(FaceSet(np.array(crops), np.array(marks, np.float32), np.array([person] * 4, dtype=object)))
    data = FaceSet.concat(faces)
    rng = np.random.default_rng(0)
    x, y, b = make_batch(data, np.arange(len(data)).repeat(4), rng, Mix(real=0.5, sbi=0.6), size=64)
    assert x.shape == (32, 3, 64, 64) and x.dtype == np.float32 and x.min() >= 0 and x.max() <= 1
    assert set(np.unique(y)) == {0.0, 1.0}
    assert b.shape == (32, 1, 16, 16)
    assert np.all(b[y == 0] == 0)                           # a real face has no blend boundary
    assert np.all(b[y == 1].reshape(int((y == 1).sum()), -1).max(axis=1) > 0.1)


def _two_people(n: int = 4) -> FaceSet:
    faces = []
    for person, sample in (("a", "astronaut"), ("h", "hopper")):
        crops, marks = [], []
        for frame, lm in jittered_frames(sample, n):
            c, _, m = crop_face(frame, lm, 64, "whole")
            crops.append(c)
            marks.append(m)
        faces.append(FaceSet(np.array(crops), np.array(marks, np.float32), np.array([person] * n, dtype=object)))
    return FaceSet.concat(faces)


def test_paired_batch_has_each_face_real_then_fake() -> None:
    data = _two_people()
    x, y, b = make_batch(data, np.array([0, 5, 2]), np.random.default_rng(1), Mix(paired=True, camera=True), size=64)
    assert x.shape == (6, 3, 64, 64) and list(y) == [0.0, 1.0] * 3
    assert np.all(b[0::2] == 0) and np.all(b[1::2].reshape(3, -1).max(axis=1) > 0.1)


def test_swapped_twins_are_fakes_and_travel_with_their_faces() -> None:
    data = _two_people()
    swaps = np.zeros_like(data.crops)
    swaps[:4] = (200, 30, 30)                   # person "a"'s twins: a red face stands in for a doppel swap
    twins = FaceSet(data.crops, data.landmarks, data.people, swaps=swaps)
    assert list(twins.has_swap) == [True] * 4 + [False] * 4
    assert list(twins.subset(np.array([3, 4])).has_swap) == [True, False]
    both = FaceSet.concat([twins, data])
    assert len(both.swaps) == 16 and list(both.has_swap) == [True] * 4 + [False] * 12
    x, y, _ = make_batch(twins, np.array([0, 1, 2]), np.random.default_rng(0), Mix(paired=True, swap=1.0), size=64)
    red = x[:, 0].mean(axis=(1, 2)) - x[:, 1].mean(axis=(1, 2))
    assert np.all(red[y == 1] > red[y == 0] + 0.2)   # every fake is its face's twin
    assert not FaceSet(data.crops, data.landmarks, data.people).has_swap.any()


def test_camera_chain_keeps_shape_and_varies() -> None:
    crop, _ = _face(64)
    outs = [camera_chain(crop, np.random.default_rng(seed)) for seed in range(6)]
    assert all(o.shape == crop.shape and o.dtype == np.uint8 for o in outs)
    assert len({o.tobytes() for o in outs}) == 6               # a different chain each draw
    assert np.mean([np.abs(o.astype(float) - crop).mean() for o in outs]) < 40   # still the same face


def test_balanced_training_draws_people_equally(monkeypatch: pytest.MonkeyPatch) -> None:
    data = FaceSet.concat([_two_people(6).subset(np.arange(6)), _two_people(2).subset(np.array([2, 3]))])
    assert list(data.people).count("a") == 6 and list(data.people).count("h") == 2
    seen: list[np.ndarray] = []
    real = make_batch

    def spy(faces: FaceSet, indices: np.ndarray, *args: object, **kw: object) -> object:
        seen.append(faces.people[indices])
        return real(faces, indices, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr("doppel.detect.train.make_batch", spy)
    cfg = DetectorConfig(input_size=64, widths=(8, 8, 8, 8, 8), head="patch")
    train(data, TrainSettings(steps=6, batch=16, balanced=True, paired=True), config=cfg)
    drawn = np.concatenate(seen)
    assert len(drawn) == 6 * 8 and 0.3 < float(np.mean(drawn == "h")) < 0.7   # 25% of faces, half the draws


def test_per_location_loss_is_trained_with_a_patch_head() -> None:
    data = _two_people()
    cfg = DetectorConfig(input_size=64, widths=(8, 8, 8, 8, 8), head="patch")
    losses = []
    for weight in (0.0, 1.0):
        torch.manual_seed(0)
        run = train(data, TrainSettings(steps=1, batch=8, paired=True, patch_weight=weight), config=cfg)
        losses.append(run.history[0]["loss"] - run.history[0]["cls"] - run.history[0]["boundary"])
    assert losses[0] == pytest.approx(0.0, abs=1e-6) and losses[1] > 0.1   # the same first batch, one more term


@pytest.mark.parametrize("stage", [2, 3])
def test_patch_head_scores_the_top_patches(stage: int) -> None:
    cfg = DetectorConfig(input_size=64, widths=(8, 8, 8, 8, 8), head="patch", patch_stage=stage)
    model = FaceForensicsNet(cfg).eval()
    with torch.inference_mode():
        out = model(torch.rand(2, 3, 64, 64))
        maps = model.patches(model.stage3(model.stage2(model.stage1(model.stem(torch.rand(1, 3, 64, 64) - 0.5)))))
    assert out.logit.shape == (2,) and out.boundary.shape == (2, 1, 16, 16)
    assert maps.shape[-1] == 64 // (8 if stage == 2 else 16)
    logits = torch.tensor([[[[0.0, 1.0], [3.0, -2.0]]]])
    assert float(top_mean(logits, 0.5)) == pytest.approx(2.0)   # the mean of the two highest of four


# -- weights on disk ------------------------------------------------------------------------------------
def test_save_and_load_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = FaceForensicsNet(SMALL).eval()
    save(model, tmp_path / "det")
    assert sorted(p.name for p in (tmp_path / "det").iterdir()) == sorted([CONFIG, WEIGHTS])
    again = load(tmp_path / "det")
    assert again.config == SMALL and not again.training
    x = torch.rand(3, 3, 64, 64)
    with torch.inference_mode():
        a, b = model(x), again(x)
    assert torch.equal(a.logit, b.logit) and torch.equal(a.boundary, b.boundary)
    assert b.boundary.shape == (3, 1, 16, 16)


def _one_line(exc: pytest.ExceptionInfo[InputError]) -> str:
    text = str(exc.value)
    assert "\n" not in text and len(text) < 300
    return text


def test_load_refuses_damaged_weights(tmp_path: Path) -> None:
    save(FaceForensicsNet(SMALL), tmp_path)
    data = (tmp_path / WEIGHTS).read_bytes()
    (tmp_path / WEIGHTS).write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError) as exc:
        load(tmp_path)
    assert "not readable detector weights" in _one_line(exc)
    (tmp_path / WEIGHTS).write_bytes(b"\x00" * 64)
    with pytest.raises(InputError, match="not readable detector weights"):
        load(tmp_path)


def test_load_refuses_weights_of_another_shape(tmp_path: Path) -> None:
    save(FaceForensicsNet(SMALL), tmp_path)
    other = SMALL.model_copy(update={"widths": (8, 8, 8, 8, 16)})
    (tmp_path / CONFIG).write_text(json.dumps(other.model_dump()))
    with pytest.raises(InputError) as exc:
        load(tmp_path)
    assert "do not match config.json" in _one_line(exc)


def test_load_refuses_missing_or_bad_config(tmp_path: Path) -> None:
    with pytest.raises(InputError) as exc:
        load(tmp_path)
    assert "no detector config" in _one_line(exc)
    (tmp_path / CONFIG).write_text('{"input_size": 7}')
    with pytest.raises(InputError) as exc:
        load(tmp_path)
    assert "not a readable detector config" in _one_line(exc)
    save(FaceForensicsNet(SMALL), tmp_path)
    (tmp_path / WEIGHTS).unlink()
    with pytest.raises(InputError, match="no detector weights"):
        load(tmp_path)


def test_shipped_detector_loads_and_is_small() -> None:
    det = Detector.load()
    assert (WEIGHTS_DIR / WEIGHTS).stat().st_size < 50 * 2**20
    assert (WEIGHTS_DIR / "DATA_CARD.md").is_file()
    cal = det.calibration
    assert 0 < cal.threshold < 1 and cal.real_clips >= 20 and cal.fpr_on_real <= cal.max_fpr == 0.05
    crop, _ = _face(det.size)
    probs, maps = det.score_crops(crop[None])
    assert probs.shape == (1,) and 0 <= float(probs[0]) <= 1
    assert maps.shape == (1, det.size // 4, det.size // 4)


# -- calibration and clip scores --------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 19, 20, 21, 100, 137])
def test_threshold_keeps_false_positives_at_most_5_percent(n: int) -> None:
    scores = list(np.random.default_rng(n).uniform(0, 1, n))
    t = threshold_for(scores)
    flagged = sum(s >= t for s in scores)
    assert flagged <= math.floor(0.05 * n)
    # and it is the lowest such threshold, up to the margin: one step lower flags one clip too many
    lower = sorted(scores, reverse=True)[flagged]
    assert sum(s >= lower for s in scores) == flagged + 1
    cal = calibrate(scores)
    assert cal.threshold == t and cal.real_clips == n and cal.fpr_on_real == flagged / n <= 0.05


def test_threshold_with_ties_and_edge_cases() -> None:
    assert threshold_for([0.3] * 40) > 0.3                  # 40 equal scores: none may be flagged
    assert threshold_for([]) == 0.5
    assert threshold_for([0.2, 0.9], max_fpr=0.5) == pytest.approx(0.201)
    assert threshold_for([1.0] * 5) == 1.0                  # capped at 1
    with pytest.raises(ValueError, match="max_fpr"):
        threshold_for([0.1], max_fpr=1.0)


def test_calibration_round_trip_and_refusals(tmp_path: Path) -> None:
    cal = calibrate([0.1, 0.2, 0.3], frames_per_clip=48, source="three clips")
    save_calibration(cal, tmp_path)
    assert load_calibration(tmp_path) == cal
    (tmp_path / CALIBRATION).write_text('{"threshold": 3}')
    with pytest.raises(InputError) as exc:
        load_calibration(tmp_path)
    assert "not a readable calibration" in _one_line(exc)
    (tmp_path / CALIBRATION).unlink()
    with pytest.raises(InputError, match="no calibration.json"):
        load_calibration(tmp_path)


def test_clip_score_is_the_mean_of_the_top_frames() -> None:
    assert clip_score([]) == 0.0
    assert clip_score([0.2]) == 0.2
    assert clip_score([0.1] * 7 + [0.9, 0.8, 0.7]) == pytest.approx(0.8)   # top 30% of 10 frames
    assert clip_score([0.0] * 9 + [1.0]) == pytest.approx(1 / 3)           # one odd frame does not decide
    assert clip_score([0.0, 0.6]) == pytest.approx(0.6)                    # at least one frame


# -- the command ------------------------------------------------------------------------------------------
@pytest.fixture
def small_detector(tmp_path: Path) -> Path:
    torch.manual_seed(1)
    folder = tmp_path / "small-detector"
    save(FaceForensicsNet(SMALL), folder)
    save_calibration(Calibration(threshold=0.5, real_clips=0, source="a test"), folder)
    return folder


@pytest.fixture
def face_clip(tmp_path: Path) -> Path:
    frames = [f for f, _ in jittered_frames("astronaut", 6)]
    return make_clip(tmp_path / "face.mp4", frames, audio=False)


def test_cli_json_report(small_detector: Path, face_clip: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["detect", str(face_clip), "--detector", str(small_detector), "--json",
                                   "--heatmap", str(tmp_path / "heat")])
    assert res.exit_code in (0, 1), res.output
    r = json.loads(res.stdout)
    assert r["file"] == str(face_clip) and r["error"] is None
    assert isinstance(r["clip_score"], float) and 0.0 <= r["clip_score"] <= 1.0
    assert r["threshold"] == 0.5 and r["fake"] is (r["clip_score"] >= 0.5)
    assert res.exit_code == int(r["fake"])
    assert [f["index"] for f in r["frames"]] == list(range(6))
    assert all(0.0 <= f["score"] <= 1.0 for f in r["frames"])
    assert sum(bool(f["faces"]) for f in r["frames"]) >= 5
    assert sum(len(f["faces"]) for f in r["frames"]) == r["faces_found"]
    for f in r["frames"]:                                  # a frame's score is its most suspicious face's
        assert f["score"] == max((face["score"] for face in f["faces"]), default=0.0)
    with_face = [f["score"] for f in r["frames"] if f["faces"]]
    assert r["clip_score"] == pytest.approx(clip_score(with_face), abs=1e-6)
    assert r["top_frames"] and r["top_frames"][0] == max(r["frames"], key=lambda f: f["score"])["index"]
    assert r["watermark"]["detected"] is False
    # heatmaps: the deciding frames, full frame size, brightest where the face is
    assert len(r["heatmaps"]) == min(3, len(r["top_frames"]))
    frame = jittered_frames("astronaut", 1)[0][0]
    for path in r["heatmaps"]:
        image = read_image(Path(path))
        assert image.shape == frame.shape
    heat = read_image(Path(r["heatmaps"][0])).astype(int)
    lm = sample_landmarks("astronaut")
    (x0, y0), (x1, y1) = lm.min(0).astype(int), lm.max(0).astype(int)
    red_minus_blue = heat[..., 0] - heat[..., 2]
    assert red_minus_blue[y0:y1, x0:x1].mean() > red_minus_blue[:40, :40].mean()


def test_cli_several_files_and_a_still_image(small_detector: Path, face_clip: Path, tmp_path: Path) -> None:
    from doppel.io.image import write_image

    still = tmp_path / "still.png"
    write_image(still, sample_image("hopper"))
    res = CliRunner().invoke(app, ["detect", str(face_clip), str(still), "--detector", str(small_detector),
                                   "--json"])
    reports = json.loads(res.stdout)
    assert [r["file"] for r in reports] == [str(face_clip), str(still)]
    assert len(reports[1]["frames"]) == 1 and reports[1]["faces_found"] == 1


def test_cli_no_face(small_detector: Path, noface_clip: Path) -> None:
    res = CliRunner().invoke(app, ["detect", str(noface_clip), "--detector", str(small_detector), "--json"])
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    assert r["faces_found"] == 0 and r["fake"] is False and r["clip_score"] == 0.0 and "no face" in r["note"]


def test_cli_bad_inputs(small_detector: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all")
    missing = tmp_path / "missing.mp4"
    res = CliRunner().invoke(app, ["detect", str(missing), str(junk), "--detector", str(small_detector), "--json"])
    assert res.exit_code == 2
    reports = json.loads(res.stdout)
    for r in reports:
        assert r["error"] and "\n" not in r["error"] and r["clip_score"] is None and r["fake"] is None
    assert "no such file" in reports[0]["error"]
    # a folder that is not a detector, and a damaged one: one line on stderr, no traceback
    res = CliRunner().invoke(app, ["detect", str(junk), "--detector", str(tmp_path)])
    assert res.exit_code != 0 and "is not a detector folder" in res.output and "Traceback" not in res.output
    (small_detector / WEIGHTS).write_bytes(b"damaged")
    res = CliRunner().invoke(app, ["detect", str(junk), "--detector", str(small_detector)])
    assert res.exit_code != 0 and "not readable detector weights" in res.output and "Traceback" not in res.output
