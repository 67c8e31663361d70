"""The face segmenter: model contract, synthetic occluders and their exact masks, labels and polygons,
save/load, ONNX parity, and a loss that goes down."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from doppel.core.errors import ConfigError, InputError
from doppel.ops.align import estimate_transform, transform_points
from doppel.segment import store, synth
from doppel.segment.crops import map_polygon, to_crop, to_segmenter_crop
from doppel.segment.data import GLASSES_BAND_WEIGHT, make_batch, make_sample
from doppel.segment.labels import Polygon, face_label, lifted_hull, with_polygons
from doppel.segment.metrics import iou, leak
from doppel.segment.paint import Fill, Occluder, Part, face_frame, paint
from doppel.segment.segmenter import Segmenter, load_segmenter
from doppel.segment.train import SegTrainConfig, train
from doppel.segment.unet import UNet, UNetConfig
from test_merge_helpers import draw_face, mean_shape

SMALL = UNetConfig(size=64, widths=(8, 8, 16, 16), head=4)


def cartoon(size: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A uint8 RGB crop with a cartoon face and its 68 landmarks."""
    rng = np.random.default_rng(seed)
    img = np.full((size, size, 3), rng.integers(40, 120, 3), np.uint8)
    lm = (mean_shape() - 0.5) * (size * 0.6) + size / 2
    draw_face(img, lm)
    return img, lm


class TestModel:
    def test_shapes(self) -> None:
        model = UNet(SMALL).eval()
        out = model(torch.rand(3, 3, 64, 64))
        assert out.shape == (3, 2, 64, 64) and out.dtype == torch.float32
        p = model.probabilities(torch.rand(1, 3, 64, 64))
        assert float(p.detach().min()) >= 0 and float(p.detach().max()) <= 1

    @pytest.mark.parametrize("shape", [(1, 3, 60, 60), (1, 1, 64, 64), (3, 64, 64), (1, 3, 64, 48)])
    def test_bad_input_names_its_shape(self, shape: tuple[int, ...]) -> None:
        with pytest.raises(ValueError, match=r"\(N, 3, S, S\)"):
            UNet(SMALL)(torch.rand(*shape))

    def test_config_is_checked(self) -> None:
        with pytest.raises(ConfigError, match="size"):
            UNetConfig(size=100)
        with pytest.raises(ConfigError, match="unknown setting"):
            UNetConfig.validated({"size": 64, "depth": 3})

    def test_save_load_round_trip(self, tmp_path: Path) -> None:
        model = store.fresh(SMALL, seed=3).eval()
        store.save(tmp_path / "seg", model, {"note": "test"})
        again = store.load(tmp_path / "seg")
        x = torch.rand(2, 3, 64, 64)
        assert again.config == SMALL
        assert torch.allclose(model(x), again(x), atol=1e-6)
        meta = store.read_train(tmp_path / "seg")
        assert meta["note"] == "test" and len(meta["weights_sha256"]) == 64
        assert not list((tmp_path / "seg").glob(".*"))  # no temporary files left

    def test_load_errors_name_the_file(self, tmp_path: Path) -> None:
        with pytest.raises(InputError, match="not a segmenter folder"):
            store.load(tmp_path)
        store.save(tmp_path / "seg", store.fresh(SMALL), {})
        (tmp_path / "seg" / store.WEIGHTS).write_bytes(b"junk")
        with pytest.raises(InputError, match=str(tmp_path / "seg")):
            store.load(tmp_path / "seg")

    def test_onnx_and_torch_agree(self) -> None:
        model = store.fresh(SMALL, seed=1).eval()
        crops = np.random.default_rng(0).integers(0, 255, (5, 64, 64, 3), dtype=np.uint8)
        a = Segmenter(model, runtime="onnx").probabilities(crops)
        b = Segmenter(model, runtime="torch").probabilities(crops)
        assert a.shape == (5, 2, 64, 64) and np.abs(a - b).max() < 1e-4
        with pytest.raises(ValueError, match=r"\(N, 64, 64, 3\)"):
            Segmenter(model, runtime="torch").masks(crops[:, :32])

    def test_base_segmenter_ships_in_the_package(self) -> None:
        seg = load_segmenter(None, runtime="torch")
        assert seg.source == "base" and store.is_segmenter(store.base_dir())
        assert (store.base_dir() / "DATA_CARD.md").is_file()
        assert (store.base_dir() / store.WEIGHTS).stat().st_size < 10 * 2**20
        img, lm = cartoon(200)
        crop, matrix = seg.crop_of(img, lm)
        assert crop.shape == (seg.size, seg.size, 3) and matrix.shape == (2, 3)
        assert seg.masks(crop[None]).shape == (1, seg.size, seg.size)


class TestPaint:
    def _square(self, label: str = "occluder", opacity: float = 1.0) -> Occluder:
        pts = np.array([[-0.5, 0.5], [0.5, 0.5], [0.5, 1.5], [-0.5, 1.5]])
        return Occluder("test", (Part(pts, Fill((0.0, 0.0, 1.0)), label, opacity=opacity),))  # type: ignore[arg-type]

    def test_mask_is_exactly_where_the_image_changed(self) -> None:
        img, lm = cartoon()
        before = img.astype(np.float32) / 255
        out = paint(before, lm, [self._square()])
        changed = np.abs(out.image - before).max(2) > 1e-6
        assert np.array_equal(changed, out.occluder > 0)
        assert not out.glasses.any()
        inside = out.occluder > 0.999
        assert np.allclose(out.image[inside], [0, 0, 1])

    def test_glasses_and_clear_lenses(self) -> None:
        img, lm = cartoon()
        before = img.astype(np.float32) / 255
        g = paint(before, lm, [self._square("glasses")])
        assert g.glasses.max() > 0.99 and not g.occluder.any()
        clear = paint(before, lm, [self._square("clear", 0.1)])
        assert not clear.glasses.any() and not clear.occluder.any()
        assert np.abs(clear.image - before).max() > 0.01
        both = paint(before, lm, [self._square("glasses"), self._square()])  # a hand over the glasses
        assert both.occluder.max() > 0.99 and both.glasses[both.occluder > 0.99].max() < 0.01

    def test_one_draw_replays_and_moves_with_the_face(self) -> None:
        img, lm = cartoon()
        rng = np.random.default_rng(7)
        occ = [synth.draw(rng, "hand", skin=(0.8, 0.6, 0.5))]
        a = paint(img.astype(np.float32) / 255, lm, occ)
        b = paint(img.astype(np.float32) / 255, lm, occ)
        assert np.array_equal(a.occluder, b.occluder)
        shifted = paint(np.zeros((64, 64, 3), np.float32), lm + np.array([5, 3]), occ)
        assert np.allclose(np.roll(a.occluder, (3, 5), axis=(0, 1))[10:-10, 10:-10],
                           shifted.occluder[10:-10, 10:-10], atol=0.02)

    def test_face_frame(self) -> None:
        _, lm = cartoon()
        f = face_frame(lm)
        eyes = np.stack([lm[36:42].mean(0), lm[42:48].mean(0)])
        assert np.allclose(transform_points(np.array([[-0.5, 0.0], [0.5, 0.0]]), f), eyes)

    @pytest.mark.parametrize("kind", synth.TRAIN_KINDS + synth.HELD_OUT_KINDS)
    def test_every_family_draws_something_on_the_face(self, kind: str) -> None:
        img, lm = cartoon(96)
        rng = np.random.default_rng(1)
        patches = [cartoon(32, seed=2)[0]]
        hits = 0
        for _ in range(6):
            out = paint(img.astype(np.float32) / 255, lm, [synth.draw(rng, kind, patches=patches)])
            hits += int((out.occluder + out.glasses).max() > 0.5)
        assert hits >= 3
        with pytest.raises(ValueError, match="unknown occluder kind"):
            synth.draw(rng, "piano")

    def test_held_out_scenes_use_held_out_kinds_only(self) -> None:
        rng = np.random.default_rng(0)
        kinds = {o.kind for _ in range(200) for o in synth.draw_scene(rng, "held_out")}
        assert kinds and kinds <= set(synth.HELD_OUT_KINDS)
        train_kinds = {o.kind for _ in range(200) for o in synth.draw_scene(rng, "train", patches=[cartoon()[0]])}
        assert train_kinds <= set(synth.TRAIN_KINDS) and not train_kinds & set(synth.HELD_OUT_KINDS)


class TestLabels:
    def test_face_label_covers_the_hull_and_stays_in_reach(self) -> None:
        img, lm = cartoon(96)
        label = face_label(img, lm)
        core = lifted_hull(lm, 96, 0.0) > 0.5
        assert label.dtype == np.float32 and label.shape == (96, 96)
        assert (label[core] > 0.5).all()
        assert not (label[lifted_hull(lm, 96, 0.5) < 0.5] > 0.5).any()

    def test_polygons_become_labels(self) -> None:
        face = np.zeros((32, 32), np.float32)
        face[8:24, 8:24] = 1
        glasses = np.zeros_like(face)
        w = np.ones_like(face)
        cut = Polygon("exclude", np.array([[10, 10], [20, 10], [20, 20], [10, 20]], np.float64))
        add = Polygon("include", np.array([[0, 0], [6, 0], [6, 6], [0, 6]], np.float64))
        f, _, wf, wg = with_polygons(face, glasses, w, w.copy(), [cut, add])
        assert f[15, 15] == 0 and f[3, 3] == 1 and f[22, 22] == 1
        assert wf[15, 15] > 1 and wf[3, 3] > 1 and wf[30, 30] == 1
        assert wg[15, 15] == 0  # glasses unknown under an exclusion
        assert face[15, 15] == 1  # inputs untouched

    def test_review_polygons_map_into_the_segmenter_crop(self) -> None:
        _, lm = cartoon(200)
        review = estimate_transform(lm, 256, "full")  # how a face record stores its crop
        seg = estimate_transform(lm, 128, "whole")
        frame_pts = np.array([[90.0, 100.0], [120.0, 100.0], [110.0, 130.0]])
        stored = transform_points(frame_pts, review) / 256  # what review.edits.to_crop stores
        got = map_polygon(stored * 256, review, seg)
        assert np.allclose(got, transform_points(frame_pts, seg))

    def test_masks_move_between_crops(self) -> None:
        _, lm = cartoon(200)
        seg = estimate_transform(lm, 128, "whole")
        swap = estimate_transform(lm, 64, "full")
        mask = lifted_hull(transform_points(lm, seg), 128, 0.0)
        moved = to_crop(mask, seg, swap, 64, outside=0.0)
        direct = lifted_hull(transform_points(lm, swap), 64, 0.0)
        assert iou(moved, direct) > 0.95

    def test_samples_and_batches(self) -> None:
        img, lm = cartoon(200)
        crop, clm, _ = to_segmenter_crop(img, lm, 64, "whole")
        s = make_sample(crop, clm, glasses_unknown=True)
        assert s.face_weight.min() == GLASSES_BAND_WEIGHT and s.face_weight.max() == 1 and s.glasses_weight.min() == 0
        b = make_batch([s], np.random.default_rng(0), 6)
        assert b.images.shape == (6, 3, 64, 64) and b.targets.shape == b.weights.shape == (6, 2, 64, 64)
        assert b.images.dtype == np.float32 and b.images.min() >= 0 and b.images.max() <= 1

    def test_metrics(self) -> None:
        a = np.zeros((8, 8))
        a[:4] = 1
        assert iou(a, a) == 1.0 and iou(a, 1 - a) == 0.0 and iou(0 * a, 0 * a) == 1.0
        assert leak(a, a, np.ones_like(a)) == 1.0 and leak(1 - a, a, np.ones_like(a)) == 0.0
        assert leak(a, a, np.zeros_like(a)) is None


def test_training_loss_goes_down() -> None:
    samples = []
    for seed in range(4):
        img, lm = cartoon(64, seed)
        samples.append(make_sample(img, lm))
    model = store.fresh(SMALL, seed=0)
    cfg = SegTrainConfig(minutes=None, steps=80, batch=4, lr=1e-2, warmup=5)
    report = train(model, samples, cfg, log_every=10)
    assert report.steps == 80 and report.images == 320
    first, last = report.losses[0][1], report.losses[-1][1]
    assert last < 0.75 * first, report.losses
    assert not model.training


def test_base_labels_replace_the_hull_where_the_base_doubts_it() -> None:
    """A workspace face with a hand over the mouth and dark glasses: the hull calls both face; where the base
    segmenter is not sure of face (or sees glasses) its own soft labels replace the hull's, fully weighted;
    elsewhere the sample is unchanged."""
    from doppel.segment.segmenter import Masks
    from doppel.workflow.segment import BASE_SURE, with_base_labels

    img, lm = cartoon(64)
    sample = make_sample(img, lm, glasses_unknown=True)
    hand = np.zeros((64, 64), bool)
    hand[40:, :] = True
    shades = np.zeros((64, 64), bool)
    shades[20:26, 10:30] = True

    class Base:
        def predict(self, crops: np.ndarray) -> Masks:
            face = np.where(hand | shades, 0.1, 0.97).astype(np.float32)
            glasses = np.where(shades, 0.8, 0.0).astype(np.float32)
            return Masks(np.repeat(face[None], len(crops), 0), np.repeat(glasses[None], len(crops), 0))

    (out,) = with_base_labels(Base(), [sample])  # type: ignore[arg-type]
    inside = sample.face > 0.5
    assert (inside & hand).sum() > 20 and (inside & shades).sum() > 20 and BASE_SURE < 0.97
    for region, face, glasses in ((inside & hand, 0.1, 0.0), (inside & shades, 0.1, 0.8)):
        assert np.allclose(out.face[region], face) and np.allclose(out.glasses[region], glasses)
        assert (out.face_weight[region] == 1).all() and (out.glasses_weight[region] == 1).all()
    rest = ~(inside & (hand | shades))
    for a, b in ((out.face, sample.face), (out.glasses, sample.glasses), (out.face_weight, sample.face_weight),
                 (out.glasses_weight, sample.glasses_weight)):
        assert np.array_equal(a[rest], b[rest])
    assert sample.face[inside & hand].min() > 0.5  # the input sample is not changed in place


def test_train_config_needs_a_budget() -> None:
    with pytest.raises(ConfigError, match="budget"):
        SegTrainConfig(minutes=None, steps=None)


def test_d12_labels_fixture() -> None:
    """The hand and pen of lp_d12 labelled by eye: small, at least 20 frames, valid review polygons."""
    import json

    from doppel.merge.settings import validate_partial

    path = Path(__file__).parent / "fixtures" / "d12_occluders.json"
    assert path.stat().st_size < 50_000
    data = json.loads(path.read_text())
    assert data["clip"] == "lp_d12_man_talking_gesturing.mp4" and len(data["frames"]) >= 20
    crop = estimate_transform(mean_shape() * 200 + 150, 256, "full")  # some face's crop, as review stores it
    for polys in data["frames"].values():
        for p in polys:
            pts = np.asarray(p["points"], np.float64)
            assert p["mode"] == "exclude" and len(pts) >= 3
            assert (pts >= 0).all() and (pts <= 512).all()
            stored = (transform_points(pts, crop) / 256).round(5).tolist()
            validate_partial({"mask_polygons": [{"mode": p["mode"], "points": stored}]})
