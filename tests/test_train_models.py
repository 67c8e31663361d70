"""Architectures, configs, save/load, augmentation replay, masks and losses (fast, no training runs)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from doppel.core.errors import ConfigError, InputError
from doppel.train import augment, checkpoint, losses
from doppel.train.config import PRESETS, ModelConfig, model_config, preset
from doppel.train.data import eyes_mouth_mask, face_hull_mask
from doppel.train.models import ARCHS, build_model, param_counts

TINY = {"e_dims": 8, "ae_dims": 16, "d_dims": 8, "d_mask_dims": 4}


@pytest.mark.parametrize(("arch", "resolution", "double_res"),
                         [(a, r, True) for a in ARCHS.names() for r in (64, 160)]
                         + [(a, 96, False) for a in ARCHS.names()])
def test_shapes_and_ranges(arch: str, resolution: int, double_res: bool) -> None:
    net = build_model(model_config(arch=arch, resolution=resolution, double_res=double_res, **TINY))
    src, dst = torch.rand(2, 3, resolution, resolution), torch.rand(3, 3, resolution, resolution)
    out = net(src, dst)
    assert out.src.shape == (2, 3, resolution, resolution) and out.src_mask.shape == (2, 1, resolution, resolution)
    assert out.dst.shape == (3, 3, resolution, resolution) and out.dst_mask.shape == (3, 1, resolution, resolution)
    face, mask = net.swap(dst)
    assert face.shape == dst.shape and mask.shape == (3, 1, resolution, resolution)
    for t in (*out, face, mask):
        assert float(t.detach().min()) >= 0.0 and float(t.detach().max()) <= 1.0


def test_swap_path_differs_from_dst_recon_for_liae() -> None:
    torch.manual_seed(0)
    net = build_model(model_config(arch="liae", resolution=64, **TINY))
    dst = torch.rand(2, 3, 64, 64)
    recon = net(dst, dst).dst
    swapped, _ = net.swap(dst)
    assert not torch.allclose(recon, swapped)  # inter_B takes part only in the destination path
    assert torch.allclose(net(dst, dst).src, swapped, atol=1e-6)  # swap == the source path


def test_saehd_capacity_matches_anchor() -> None:
    """Parameter split of DeepFaceLab SAEHD liae-ud/df-ud at 128 px (../shared/anchors/dfl-saehd-cpu.md)."""
    counts = param_counts(build_model(PRESETS["gpu-128"].model))
    assert round(counts["encoder"] / 1e6, 1) == 4.3
    assert round(counts["inter_ab"] / 1e6, 1) == 19.9 and round(counts["inter_b"] / 1e6, 1) == 19.9
    assert round(counts["decoder"] / 1e6, 1) == 38.2 and round(counts["total"] / 1e6, 1) == 82.4
    df = param_counts(build_model(model_config(PRESETS["gpu-128"].model, arch="df")))
    assert round(df["inter"] / 1e6, 1) == 11.8 and round(df["decoder_src"] / 1e6, 1) == 19.2


def test_bad_configs() -> None:
    with pytest.raises(ConfigError, match="resolution"):
        model_config(resolution=100)
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        preset("nope")
    with pytest.raises(ConfigError, match="unknown architecture 'xyz'"):
        build_model(model_config(arch="xyz"))


def test_weights_round_trip(tmp_path: Path) -> None:
    cfg = model_config(arch="df", resolution=64, **TINY)
    net = build_model(cfg)
    checkpoint.write_config(tmp_path, cfg)
    checkpoint.save_weights(tmp_path, net, {"step": "3"})
    assert checkpoint.read_config(tmp_path) == cfg
    again = build_model(checkpoint.read_config(tmp_path))
    checkpoint.load_weights(tmp_path, again)
    for (k, a), (_, b) in zip(net.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    # no pickle anywhere: the weights are plain safetensors
    assert set(load_file(str(tmp_path / "model.safetensors"))) == set(net.state_dict())
    wrong = build_model(model_config(arch="liae", resolution=64, **TINY))
    with pytest.raises(ConfigError, match="do not fit"):
        checkpoint.load_weights(tmp_path, wrong)


def test_checkpoint_optimizer_round_trip_and_fallback(tmp_path: Path) -> None:
    net = build_model(model_config(resolution=64, **TINY))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.rand(2, 3, 64, 64)
    for step in (1, 2, 3):
        opt.zero_grad()
        sum(t.mean() for t in net(x, x)).backward()
        opt.step()
        ot, os_ = checkpoint.optimizer_tensors(opt, "opt")
        checkpoint.save(tmp_path, step, {**checkpoint.module_tensors(net, "model"), **ot}, {"opt": os_})
    assert [p.name for p in sorted((tmp_path / "checkpoints").iterdir())] == ["step-000000002", "step-000000003"]
    state = checkpoint.load_latest(tmp_path)
    assert state is not None and state.step == 3
    opt2 = torch.optim.Adam(build_model(model_config(resolution=64, **TINY)).parameters(), lr=1e-3)
    checkpoint.load_optimizer(opt2, state.tensors, state.meta["opt"], "opt")
    a, b = opt.state_dict(), opt2.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for i in a["state"]:
        assert torch.equal(a["state"][i]["exp_avg_sq"], b["state"][i]["exp_avg_sq"])
    # damage the newest: the previous one is used
    latest = tmp_path / "checkpoints" / "step-000000003" / "state.safetensors"
    data = bytearray(latest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    latest.write_bytes(bytes(data))
    state = checkpoint.load_latest(tmp_path)
    assert state is not None and state.step == 2
    (tmp_path / "checkpoints" / "step-000000002" / "state.json").write_text("{trunc")
    with pytest.raises(InputError, match="every checkpoint is damaged"):
        checkpoint.load_latest(tmp_path)


def test_resume_with_other_capacity_refused(tmp_path: Path) -> None:
    saved = model_config(arch="liae", resolution=64, **TINY)
    with pytest.raises(ConfigError, match="arch 'liae' \\(asked 'df'\\)"):
        checkpoint.check_compatible(saved, model_config(saved, arch="df"), tmp_path)
    checkpoint.check_compatible(saved, ModelConfig(**saved.model_dump()), tmp_path)


def _landmarks() -> np.ndarray:
    import facefixtures
    from doppel.ops.align import estimate_transform, transform_points

    lm = facefixtures.sample_landmarks("astronaut")
    return transform_points(lm, estimate_transform(lm, 128))


def test_augment_replay_is_consistent() -> None:
    """The same draw moves image, mask and landmarks alike: masks drawn from moved landmarks match
    moved masks, and a dot painted at each landmark lands where apply_points says."""
    lm = _landmarks()
    rng = np.random.default_rng(3)
    for _ in range(5):
        p = augment.draw(rng, 128)
        for warp in (False, True):
            moved_mask = augment.apply_mask(face_hull_mask(lm, 128), p, warp=warp) > 127
            mask_of_moved = face_hull_mask(augment.apply_points(lm, p, warp=warp), 128) > 127
            iou = (moved_mask & mask_of_moved).sum() / (moved_mask | mask_of_moved).sum()
            assert iou > (0.93 if warp else 0.97), (warp, iou)  # a warp bends the hull's straight edges
            for k in (30, 36, 45, 48, 57):  # nose tip, eye corners, mouth corner, lower lip (away from borders)
                dot = np.zeros((128, 128), np.float32)
                x, y = np.round(lm[k]).astype(int)
                dot[y - 1:y + 2, x - 1:x + 2] = 1.0
                moved = augment.apply_geometry(dot, p, warp=warp)
                ys, xs = np.nonzero(moved > 0.05)
                w = moved[ys, xs]
                centroid = np.array([(xs * w).sum(), (ys * w).sum()]) / w.sum()
                expect = augment.apply_points(np.round(lm[k:k + 1]), p, warp=warp)[0]
                assert np.linalg.norm(centroid - expect) < 0.75, (k, warp, centroid, expect)


def test_augment_draw_is_reproducible_and_varied() -> None:
    a = augment.draw(np.random.default_rng(7), 64)
    b = augment.draw(np.random.default_rng(7), 64)
    c = augment.draw(np.random.default_rng(8), 64)
    assert np.array_equal(a.affine, b.affine) and a.warp is not None and np.array_equal(a.warp, b.warp)
    assert not np.array_equal(a.affine, c.affine)
    img = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    assert np.array_equal(augment.apply_image(img, a), augment.apply_image(img, b))
    with pytest.raises(ValueError, match="64x64"):
        augment.apply_geometry(np.zeros((32, 32), np.uint8), a)


def test_masks_from_landmarks() -> None:
    lm = _landmarks()
    hull, em = face_hull_mask(lm, 128) > 127, eyes_mouth_mask(lm, 128) > 127
    assert 0.25 < hull.mean() < 0.8 and 0.01 < em.mean() < 0.15
    assert (em & ~hull).sum() < 0.02 * em.sum()  # eyes and mouth sit inside the face
    x, y = np.round(lm[30]).astype(int)
    assert hull[y, x] and not em[y, x]  # the nose tip: face, not eyes/mouth


def test_loss_sanity() -> None:
    torch.manual_seed(0)
    t = torch.rand(2, 3, 64, 64)
    m = torch.ones(2, 1, 64, 64)
    em = torch.zeros(2, 1, 64, 64)
    em[..., 20:30, 20:40] = 1
    same = losses.face_loss(t, t, m, em)
    assert all(float(v) == pytest.approx(0.0, abs=1e-6) for v in same.values())
    noisy = (t + 0.1 * torch.randn_like(t)).clamp(0, 1)
    far = torch.rand_like(t)
    near_l, far_l = sum(losses.face_loss(noisy, t, m, em).values()), sum(losses.face_loss(far, t, m, em).values())
    assert 0 < float(near_l) < float(far_l)
    # outside the mask nothing counts
    m0 = torch.zeros_like(m)
    m0[..., 16:48, 16:48] = 1
    diff_outside = t.clone()
    diff_outside[..., :4, :] = 1 - diff_outside[..., :4, :]
    assert float(sum(losses.face_loss(diff_outside, t, m0, em * 0).values())) < 1e-3
    # eye/mouth weight raises the loss of an error inside that region
    bad = t.clone()
    bad[..., 22:28, 22:38] = 1 - bad[..., 22:28, 22:38]
    lo = losses.face_loss(bad, t, m, em, eyes_mouth_weight=0)["eyes_mouth"]
    hi = losses.face_loss(bad, t, m, em, eyes_mouth_weight=10)["eyes_mouth"]
    assert float(lo) == 0 and float(hi) > 0
    # the gradient term: absent by default; a blur of the target costs it, a brightness shift does not
    assert "grad" not in losses.face_loss(bad, t, m, em)
    soft = torch.nn.functional.avg_pool2d(t, 3, 1, 1)
    assert float(losses.face_loss(soft, t, m, em, grad_weight=1)["grad"]) > 0.01
    assert float(losses.face_loss(t + 0.1, t, m, em, grad_weight=1)["grad"]) < 0.01
    # the top-octave spectrum term: absent by default; a blur costs it more than the same texture moved by a pixel
    assert "spectrum" not in losses.face_loss(bad, t, m, em)
    moved = torch.roll(t, (1, 1), dims=(2, 3))
    blur_s = float(losses.face_loss(soft, t, m, em, spectrum_weight=1)["spectrum"])
    assert blur_s > 2 * float(losses.face_loss(moved, t, m, em, spectrum_weight=1)["spectrum"])
    assert float(losses.mask_loss(m, m)) == 0 and float(losses.mask_loss(m0, m)) > 0


def test_ema_and_gan_terms() -> None:
    net = torch.nn.Linear(3, 2)
    shadow = torch.nn.Linear(3, 2)
    ema = losses.EMA(net, shadow, decay=0.5)
    with torch.no_grad():
        net.weight.add_(2.0)
    before = shadow.weight.clone()
    ema.update(1000)  # past the warm-up: the configured decay
    assert torch.allclose(shadow.weight, before + 1.0)
    with torch.no_grad():
        net.weight.add_(1.0)
    ema.update(0)  # first update: decay 0.1, so the average mostly takes the new weights
    assert torch.allclose(shadow.weight, before + 1.0 + 0.9 * 2.0)
    assert losses.EMA(net, shadow, decay=0.999).decay_at(100) == pytest.approx(101 / 110)
    critic = losses.PatchDiscriminator(8)
    x = torch.rand(2, 3, 64, 64)
    assert critic(x).shape == (2, 1, 8, 8)
    assert float(losses.gan_generator_loss(critic, x, 0.1).detach()) > 0
    assert float(losses.gan_critic_loss(critic, x, x).detach()) > 0


def test_blur_matches_depthwise_convolution() -> None:
    import torch.nn.functional as F

    x = torch.rand(2, 3, 40, 36)
    g = losses._gauss(9, 1.5, torch.device("cpu"))
    xp = F.pad(x, (4, 4, 4, 4), mode="reflect")
    ref = F.conv2d(F.conv2d(xp, g.view(1, 1, 1, 9).expand(3, 1, 1, 9), groups=3),
                   g.view(1, 1, 9, 1).expand(3, 1, 9, 1), groups=3)
    torch.testing.assert_close(losses.blur(x, 9, 1.5), ref, atol=1e-6, rtol=0)


def _checkpoints(tmp_path: Path) -> Path:
    net = build_model(model_config(resolution=64, **TINY))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for step in (1, 2):
        ot, os_ = checkpoint.optimizer_tensors(opt, "opt")
        checkpoint.save(tmp_path, step, {**checkpoint.module_tensors(net, "model"), **ot},
                        {"opt": os_, "elapsed_s": 1.5})
    return tmp_path / "checkpoints" / "step-000000002" / "state.json"


@pytest.mark.parametrize("change", [{"step": "abc"}, {"step": -7}, {"step": True}, {"elapsed_s": "x"},
                                    {"opt": None}, {"opt": []}, {"critic": "x"}, "list"])
def test_damaged_state_json_falls_back_to_the_previous_checkpoint(tmp_path: Path, change: object) -> None:
    newest = _checkpoints(tmp_path)
    meta = json.loads(newest.read_text())
    meta.pop("meta_sha256")  # as a checkpoint written before state.json had a checksum
    newest.write_text(json.dumps([meta] if change == "list" else {**meta, **change}))  # type: ignore[dict-item]
    state = checkpoint.load_latest(tmp_path)
    assert state is not None and state.step == 1


def test_state_json_edits_break_its_checksum(tmp_path: Path) -> None:
    newest = _checkpoints(tmp_path)
    meta = json.loads(newest.read_text())
    newest.write_text(json.dumps({**meta, "elapsed_s": 99.0}))  # plausible, but not what was written
    state = checkpoint.load_latest(tmp_path)
    assert state is not None and state.step == 1


def test_weights_bit_flip_and_wrong_shapes_are_one_line_errors(tmp_path: Path) -> None:
    cfg = model_config(arch="df", resolution=64, **TINY)
    checkpoint.write_config(tmp_path, cfg)
    checkpoint.save_weights(tmp_path, build_model(cfg), {"step": "1"})
    path = tmp_path / "model.safetensors"
    good = path.read_bytes()
    data = bytearray(good)
    data[-5] ^= 0x01  # one bit in the last tensor's data
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="damaged"):
        checkpoint.load_weights(tmp_path, build_model(cfg))
    path.write_bytes(good)
    wider = build_model(model_config(cfg, e_dims=16))  # same names, other shapes
    with pytest.raises(ConfigError, match="do not fit config.json"):
        checkpoint.load_weights(tmp_path, wider)
