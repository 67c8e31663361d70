"""Glitch scoring: the measurements, the robust normalisation, and planted glitches ranked on top."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import query
from doppel.cli.app import app
from doppel.ops import face
from doppel.review import features as ft
from doppel.review.glitches import FLAG_SCORE, Measure, precision_at_k, ranked, robust_z, score
from doppel.store import Workspace
from test_merge_helpers import mean_shape
from test_review_helpers import PERTURBED, PLANTED, Analysed, review_render  # noqa: F401

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def test_planted_glitches_rank_on_top(review_render: Analysed) -> None:  # noqa: F811
    """3 occluded + 3 misaligned frames in a 60-frame merged render rank on top (measured: precision@6 = 1.0)."""
    k = len(PLANTED)
    p_at_k = precision_at_k(review_render.glitches, set(PLANTED), k)
    top = ranked(review_render.glitches, k)
    print(f"\nprecision@{k} = {p_at_k:.2f}; top: {[(g.frame, g.score) for g in top]}")
    ARTIFACTS.mkdir(exist_ok=True)  # reported for CI readers too
    (ARTIFACTS / "glitch-precision.json").write_text(json.dumps(
        {"k": k, "precision_at_k": p_at_k, "planted": sorted(PLANTED),
         "top": [{"frame": g.frame, "score": g.score, "reasons": [r["reason"] for r in g.reasons]} for g in top]},
        indent=1))
    assert p_at_k >= 5 / 6
    assert all(g.flagged for g in review_render.glitches if g.frame in PERTURBED)
    quiet = [g for g in review_render.glitches if abs(g.frame - 21) > 4 and abs(g.frame - 41) > 4]
    assert sum(g.flagged for g in quiet) <= 2  # away from the planted frames, (almost) nothing is flagged
    for g in top:
        assert g.reasons and all({"reason", "z", "value", "usual"} <= set(r) for r in g.reasons)


def test_scores_are_stored_for_every_frame(review_render: Analysed) -> None:  # noqa: F811
    with Workspace.open(review_render.root / "ws") as ws:
        rows = query(ws, "SELECT score, reasons FROM glitch_scores WHERE render_id = ?",
                     (review_render.render_id,)).fetchall()
    assert len(rows) == review_render.frames
    assert all(r[0] is not None and isinstance(json.loads(r[1]), list) for r in rows)


def test_cli_prints_the_ranked_list(review_render: Analysed) -> None:  # noqa: F811
    runner = CliRunner()
    ws = str(review_render.root / "ws")
    out = runner.invoke(app, ["glitches", ws, review_render.uid[:6], "--top", "3", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["render"] == review_render.uid and len(data["glitches"]) == 3
    scores = [g["score"] for g in data["glitches"]]
    assert scores == sorted(scores, reverse=True)
    text = runner.invoke(app, ["glitches", ws, review_render.uid, "--top", "2"])
    assert text.exit_code == 0 and "FLAG" in text.stdout
    bad = runner.invoke(app, ["glitches", ws, "ffffffff"])
    assert bad.exit_code != 0 and "no render matches 'ffffffff'" in bad.stderr


def test_robust_z_uses_median_mad_with_a_floor() -> None:
    x = np.array([1.0, 1.1, 0.9, 1.0, 1.05, 0.95, 9.0, np.nan])
    z, med, spread = robust_z(x, floor=0.01)
    assert med == pytest.approx(1.0) and spread == pytest.approx(1.4826 * 0.05)
    assert z[6] > 50 and np.isnan(z[7])
    z2, _, spread2 = robust_z(np.zeros(10), floor=0.5)  # a steady signal: spread is the floor, no alarms
    assert spread2 == 0.5 and np.all(z2 == 0)


def _measures(n: int) -> list[Measure]:
    rng = np.random.default_rng(0)
    return [Measure(i, "swapped", landmark_score=0.9 + rng.normal(0, 0.005), landmark_jump=0.01 + rng.normal(0, 0.002),
                    alignment=0.05, identity=0.3 + rng.normal(0, 0.005), mouth=0.02, eyes=0.01, gaze=0.02,
                    colour=[1.0, 0.0, 0.0], occlusion=0.01) for i in range(n)]


def test_each_signal_flags_its_own_glitch() -> None:
    cases = {"identity": ("identity", 0.6), "mouth": ("mouth", 0.4), "eyes": ("eyes", 0.2),
             "gaze": ("gaze", 0.5), "occlusion": ("occlusion", 0.5), "alignment": ("alignment", 0.4),
             "landmark_jump": ("landmark_jump", 0.3), "colour": ("colour", [12.0, 3.0, 0.0]),
             "landmark_confidence": ("landmark_score", 0.3)}
    for reason, (attr, value) in cases.items():
        measures = _measures(40)
        setattr(measures[17], attr, value)
        g = score(measures)
        assert ranked(g, 1)[0].frame == 17 and g[17].flagged, reason
        assert g[17].reasons[0]["reason"] == reason
        assert sum(x.flagged for x in g) == 1, reason


def test_mask_instability_and_dropout() -> None:
    measures = _measures(30)
    masks = np.zeros((30, ft.MASK_SIZE, ft.MASK_SIZE), np.uint8)
    masks[:, 10:40, 12:36] = 1
    masks[9, 10:40, 12:24] = 0  # half the mask gone for one frame
    measures[20].status = "passthrough"  # no face found: the original flashes back
    g = score(measures, masks)
    assert g[9].flagged and g[9].reasons[0]["reason"] == "mask"
    assert g[20].flagged and g[20].reasons[0]["reason"] == "dropout"
    measures[5].shot_cut = True  # a cut splits the neighbourhoods: frames across it are not compared
    assert score(measures, masks)[9].flagged
    # an edit from frame 9 on (its own settings) that changes the mask is intended, not a glitch
    masks[9:, 10:40, 12:24] = 0
    for m in measures[9:]:
        m.settings_hash = "edited"
    g = score(measures, masks)
    assert not g[9].flagged and not any(x.flagged for x in g[10:19])


def test_faint_matte_still_scored() -> None:
    """A barely trained model's matte never reaches one half; its face region is taken at half its own peak,
    so an occluder cut out of it still shows as a mask change, and a trained matte's region is unchanged."""
    trained = np.zeros((128, 128), np.uint8)
    trained[32:96, 32:96] = 255
    trained[32:96, 32:40] = 100  # a feathered edge below one half
    assert (ft.matte_region(trained) == (trained > 127)).all()
    faint = (trained.astype(np.float32) * 0.43).astype(np.uint8)  # peak 109
    assert (ft.matte_region(faint) == (trained > 127)).all()
    assert not ft.matte_region(np.zeros((8, 8), np.uint8)).any()
    to_crop = np.array([[48 / 128, 0.0, 0.0], [0.0, 48 / 128, 0.0]])
    masks, measures = [], _measures(30)
    for i in range(30):
        frame = faint.copy()
        if i == 9:
            frame[64:96] = 0  # the lower half kept off the swap on one frame
        masks.append(ft.crop_mask(ft.matte_region(frame), to_crop, ft.MASK_SIZE))
    g = score(measures, np.stack(masks))
    assert g[9].flagged and g[9].reasons[0]["reason"] == "mask"
    assert sum(x.flagged for x in g) == 1


def test_mouth_eyes_gaze_from_landmarks() -> None:
    lm = mean_shape() * 200 + 50
    open_mouth = lm.copy()
    open_mouth[65:68, 1] += 12  # lower inner lip down
    assert face.mouth_openness(open_mouth) > face.mouth_openness(lm) + 0.05
    shut = lm.copy()
    shut[[37, 38, 43, 44], 1] = lm[[41, 40, 47, 46], 1]
    assert np.all(face.eye_openness(shut) < 0.05) and np.all(face.eye_openness(lm) > 0.1)
    image = np.full((320, 320, 3), 220, np.uint8)
    for eye, dx in ((slice(36, 42), -4), (slice(42, 48), -4)):
        c = lm[eye].mean(0)
        import cv2

        cv2.circle(image, (int(c[0] + dx), int(c[1])), 3, (20, 20, 20), -1)
    left = ft.gaze(image, lm)
    image2 = np.full_like(image, 220)
    for eye in (slice(36, 42), slice(42, 48)):
        c = lm[eye].mean(0)
        import cv2

        cv2.circle(image2, (int(c[0] + 5), int(c[1])), 3, (20, 20, 20), -1)
    right = ft.gaze(image2, lm)
    assert left is not None and right is not None
    assert np.all(right[:, 0] > left[:, 0] + 0.1)  # the iris moved along the corner line


def test_flag_threshold_is_documented_value() -> None:
    assert FLAG_SCORE == 4.0


def test_combine_names_each_person_and_adds_their_evidence() -> None:
    from doppel.review.glitches import FLAG_SCORE, Glitch, combine

    def g(frame: int, status: str, *zs: float) -> Glitch:
        reasons = [{"reason": "mouth", "z": z, "value": 0.1, "usual": 0.0} for z in zs]
        total = math.sqrt(sum(z * z for z in zs))
        return Glitch(frame, round(total, 3), total >= FLAG_SCORE, status, False, reasons)

    one = [g(0, "swapped", 3.0), g(1, "swapped")]
    assert combine([("a", one)]) == one  # one person: unchanged, no names
    both = combine([("a", one), ("b", [g(0, "passthrough", 3.0), g(1, "swapped", 5.0)])])
    assert [x.frame for x in both] == [0, 1]
    assert both[0].score == round(math.sqrt(18.0), 3) and both[0].flagged  # 3 and 3: flagged together
    assert {r["person"] for r in both[0].reasons} == {"a", "b"} and both[0].status == "swapped"
    assert [r["person"] for r in both[1].reasons] == ["b"] and both[1].score == 5.0
