"""Training the per-identity detail network (:mod:`doppel.train.models.detail`) of a trained face model.

:func:`train_detail` reads top to bottom:

1. load the face model's EMA weights and the source person's faces at ``scale`` x the model's
   resolution, less those the face model held out (``train.json``'s ``holdout``), so a self-swap of
   them stays a measurement on frames nothing was trained on;
2. build the low-resolution inputs: the face model's own reconstruction of each face (what the
   network will be given at merge time) and the true face area-averaged down, lightly blurred
   (so it does not learn one model's particular errors only);
3. train on random aligned patch pairs (low ``patch`` px -> high ``scale * patch`` px) with an L1,
   a gradient L1 (edges of the right strength in the right place), a structural (DSSIM) loss and an
   amplitude-spectrum loss above the input's Nyquist limit (texture of the right strength where its exact
   place is not predictable, which the pixel losses blur away), flips and brightness/contrast jitter, for
   ``minutes`` or ``iters`` steps;
4. write ``detail.safetensors`` (weights) and ``detail.json`` (config, identity, steps, losses) into
   the model folder, where :func:`doppel.train.swapper.load_swapper` finds them.

Like the training loop it never opens the workspace: it is handed the faces
(:func:`doppel.workflow.train.train` does that, after the face model).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from doppel import __version__
from doppel.core.clock import now
from doppel.core.errors import ConfigError, NoFaceError
from doppel.core.progress import ProgressFn, no_progress
from doppel.io.atomic import atomic_path, write_text_atomic
from doppel.store.records import FaceRecord
from doppel.train import checkpoint, losses
from doppel.train.config import DetailConfig
from doppel.train.data import load_faceset
from doppel.train.export import load_inference_model
from doppel.train.models.detail import DetailNet

log = logging.getLogger(__name__)

WEIGHTS = "detail.safetensors"
META = "detail.json"


@dataclass(frozen=True)
class DetailSpec:
    """How to train: a budget (``minutes`` of wall clock or ``iters`` steps; the first reached stops),
    ``batch`` patches per step, low-resolution ``patch`` side, Adam ``lr``, loss weights and the share of
    steps' inputs that are the face model's own reconstructions (the rest: blurred true faces)."""

    minutes: float | None = None
    iters: int | None = None
    batch: int = 16
    patch: int = 32
    lr: float = 5e-4
    grad_weight: float = 1.0
    ssim_weight: float = 1.0
    recon_share: float = 0.5
    max_blur: float = 1.0  # px at the low resolution (sigma), for the true-face inputs
    recon_blur: float = 0.0  # px (sigma), the most the face model's reconstructions are blurred too
    adv_weight: float = 0.0  # weight of the patch discriminator's loss; 0: none
    adv_start: int = 300  # steps of reconstruction losses alone before the discriminator joins
    ema: float = 0.0  # decay of an exponential moving average of the weights, saved instead of the last step's; 0: none
    # weight of the high-band amplitude-spectrum loss (losses.spectrum_loss; 0: none). 0.1: sharper swaps on both
    # shared pairs, held-out self-swaps as close to the truth (research/ablation.md, "A spectrum loss")
    spectrum_weight: float = 0.1
    seed: int = 0


@dataclass
class DetailResult:
    path: Path
    steps: int
    seconds: float
    losses: dict[str, float]


def _gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def detail_loss(pred: torch.Tensor, target: torch.Tensor, *, grad_weight: float, ssim_weight: float
                ) -> dict[str, torch.Tensor]:
    """L1 + gradient L1 + DSSIM (11 px window) of ``(N, 3, H, W)`` faces in [0, 1]; named scalars."""
    out = {"l1": (pred - target).abs().mean()}
    (px, py), (tx, ty) = _gradients(pred), _gradients(target)
    out["grad"] = grad_weight * ((px - tx).abs().mean() + (py - ty).abs().mean())
    out["ssim"] = ssim_weight * losses.dssim(pred, target, 11)
    return out


@torch.no_grad()
def _reconstruct(model: torch.nn.Module, low: np.ndarray, batch: int = 16) -> np.ndarray:
    """The face model's swap path on ``(N, r, r, 3)`` uint8 faces of its source person: its reconstruction."""
    out = []
    for i in range(0, len(low), batch):
        x = torch.from_numpy(low[i:i + batch]).permute(0, 3, 1, 2).float().div(255)
        face, _ = model.swap(x)  # type: ignore[operator]
        out.append((face.clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255 + 0.5).astype(np.uint8))
    return np.concatenate(out)


class _Pairs:
    """Random aligned (low, high) patch pairs as float tensors."""

    def __init__(self, high: np.ndarray, low_true: np.ndarray, low_recon: np.ndarray, spec: DetailSpec, scale: int
                 ) -> None:
        self.high, self.low_true, self.low_recon = high, low_true, low_recon
        self.spec, self.scale = spec, scale
        self.rng = np.random.default_rng(spec.seed)

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        s, p, rng = self.spec, self.spec.patch, self.rng
        r = self.low_true.shape[1]
        lows, highs = [], []
        for _ in range(s.batch):
            i = int(rng.integers(len(self.high)))
            x0, y0 = (int(v) for v in rng.integers(0, r - p + 1, 2))
            if rng.random() < s.recon_share:
                low = self.low_recon[i]
                sigma = float(rng.uniform(0.0, s.recon_blur)) if s.recon_blur else 0.0
                if sigma > 0.2:
                    low = cv2.GaussianBlur(low, (0, 0), sigma)
            else:
                low = self.low_true[i]
                sigma = float(rng.uniform(0.0, s.max_blur))
                if sigma > 0.2:
                    low = cv2.GaussianBlur(low, (0, 0), sigma)
            lo = low[y0:y0 + p, x0:x0 + p].astype(np.float32) / 255
            hi = self.high[i, y0 * self.scale:(y0 + p) * self.scale, x0 * self.scale:(x0 + p) * self.scale]
            hi = hi.astype(np.float32) / 255
            if rng.random() < 0.5:
                lo, hi = lo[:, ::-1], hi[:, ::-1]
            gain, bias = float(rng.uniform(0.9, 1.1)), float(rng.uniform(-0.05, 0.05))
            lows.append(np.clip(lo * gain + bias, 0, 1))
            highs.append(np.clip(hi * gain + bias, 0, 1))
        t = [torch.from_numpy(np.ascontiguousarray(np.stack(a))).permute(0, 3, 1, 2) for a in (lows, highs)]
        return t[0], t[1]


class PatchCritic(torch.nn.Module):
    """A small conditional patch discriminator: (bicubic-upsampled input, face) -> a logit per ~24 px patch.

    Conditioning on the input keeps it judging "is this a real face *for this input*", so the texture
    it asks for has to agree with what the face model drew, not just look like skin anywhere.
    """

    def __init__(self, scale: int, width: int = 32) -> None:
        super().__init__()
        self.scale = scale
        w = width
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(6, w, 4, 2, 1), torch.nn.LeakyReLU(0.2),
            torch.nn.Conv2d(w, 2 * w, 4, 2, 1), torch.nn.LeakyReLU(0.2),
            torch.nn.Conv2d(2 * w, 2 * w, 3, 1, 1), torch.nn.LeakyReLU(0.2),
            torch.nn.Conv2d(2 * w, 1, 3, 1, 1))

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(low, size=high.shape[-2:], mode="bicubic", align_corners=False)
        return self.body(torch.cat([up, high], 1) * 2 - 1)


def held_out(model_dir: Path) -> set[int]:
    """The face ids the face model in ``model_dir`` held out of training (``train.json``), maybe none."""
    try:
        meta = json.loads((model_dir / checkpoint.TRAIN).read_text())
    except (OSError, ValueError):
        return set()
    return {int(i) for i in (meta.get("holdout") or {}).get("src_faces", [])}


def train_detail(faces: list[FaceRecord], model_dir: Path, identity: str, spec: DetailSpec, *,
                 config: DetailConfig = DetailConfig(), progress: ProgressFn = no_progress,
                 should_stop: Callable[[], bool] | None = None) -> DetailResult:
    """Train the detail network of the model in ``model_dir`` on ``faces`` (``identity``'s, in use); see the
    module docstring.

    ``should_stop`` ends training early when it returns True (checked before every step). Raises
    ``ConfigError`` without any budget or when the patch does not fit the model's resolution,
    ``NoFaceError`` when no face is left to train on.
    """
    if spec.minutes is None and spec.iters is None and should_stop is None:
        raise ConfigError("train_detail needs a budget: minutes or iters")
    # 1. the face model and the faces
    mcfg = checkpoint.read_config(model_dir)
    r, scale = mcfg.resolution, config.scale
    if spec.patch > r:
        raise ConfigError(f"detail patch {spec.patch} px is larger than the model's {r} px faces")
    skip = held_out(model_dir)
    usable = [f for f in faces if f.id not in skip]
    if not usable:
        raise NoFaceError(f"identity {identity!r} has no faces to train a detail network on")
    model = load_inference_model(model_dir)
    high = load_faceset({identity: usable}, r * scale, mcfg.face_type).images
    # 2. the inputs
    low_true = np.stack([cv2.resize(h, (r, r), interpolation=cv2.INTER_AREA) for h in high])
    low_recon = _reconstruct(model, low_true)
    del model
    pairs = _Pairs(high, low_true, low_recon, spec, scale)
    # 3. the steps
    torch.manual_seed(spec.seed)
    net = DetailNet(config)
    opt = torch.optim.Adam(net.parameters(), lr=spec.lr, betas=(0.9, 0.99))
    # an average of the weights over the last few hundred steps: with a discriminator the last step is wherever
    # the two networks' tug happened to stop
    ema = torch.optim.swa_utils.AveragedModel(
        net, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(spec.ema)) if spec.ema > 0 else None
    critic = PatchCritic(scale) if spec.adv_weight > 0 else None
    opt_c = torch.optim.Adam(critic.parameters(), lr=spec.lr / 2, betas=(0.5, 0.99)) if critic else None
    deadline = time.monotonic() + spec.minutes * 60 if spec.minutes is not None else math.inf
    stop_at = spec.iters if spec.iters is not None else 2**62
    t0, step, last = time.monotonic(), 0, {}
    while step < stop_at and time.monotonic() < deadline and not (should_stop is not None and should_stop()):
        lo, hi = pairs.batch()
        pred = net(lo)
        parts = detail_loss(pred, hi, grad_weight=spec.grad_weight, ssim_weight=spec.ssim_weight)
        if spec.spectrum_weight > 0:
            parts["spectrum"] = spec.spectrum_weight * losses.spectrum_loss(pred, hi, scale)
        adversarial = critic is not None and step >= spec.adv_start
        if adversarial:
            assert critic is not None and opt_c is not None
            critic.requires_grad_(False)
            parts["adv"] = spec.adv_weight * F.softplus(-critic(lo, pred)).mean()
        loss = sum(parts.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[union-attr]
        opt.step()
        if ema is not None:
            ema.update_parameters(net)
        if adversarial:  # the critic's step: real faces up, the network's down
            assert critic is not None and opt_c is not None
            critic.requires_grad_(True)
            c_loss = F.softplus(-critic(lo, hi)).mean() + F.softplus(critic(lo, pred.detach())).mean()
            opt_c.zero_grad(set_to_none=True)
            c_loss.backward()
            opt_c.step()
            parts["critic"] = c_loss.detach()
        step += 1
        last = {k: float(v.detach()) for k, v in parts.items()}
        progress(step, spec.iters)
    seconds = time.monotonic() - t0
    # 4. outputs
    if ema is not None and step > 0:
        net.load_state_dict(ema.module.state_dict())
    path = save_detail(model_dir, net, {"identity": identity, "steps": step, "seconds": round(seconds, 1),
                                        "input_resolution": r, "losses": last,
                                        "spec": {k: v for k, v in spec.__dict__.items()}})
    log.info("detail network: %d steps in %.0f s, losses %s", step, seconds, last)
    return DetailResult(path, step, seconds, last)


def save_detail(model_dir: Path, net: DetailNet, meta: dict[str, Any]) -> Path:
    """Write the weights and ``detail.json`` (config + ``meta``) atomically; returns the weights path."""
    path = model_dir / WEIGHTS
    tensors = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp))
    doc = {"config": net.config.model_dump(), "doppel_version": __version__, "trained_at": now(), **meta}
    write_text_atomic(model_dir / META, json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return path


def load_detail(model_dir: Path) -> DetailNet | None:
    """The model folder's detail network in eval mode, or None when it has none."""
    from safetensors.torch import load_file

    if not (model_dir / WEIGHTS).is_file():
        return None
    meta = json.loads((model_dir / META).read_text())
    net = DetailNet(DetailConfig.model_validate(meta["config"]))
    net.load_state_dict(load_file(str(model_dir / WEIGHTS)))
    return net.eval().requires_grad_(False)


def upscale_mask(mask: torch.Tensor, scale: int) -> torch.Tensor:
    """``(N, 1, r, r)`` -> ``(N, 1, scale r, scale r)`` bilinear (the mask is smooth)."""
    return F.interpolate(mask, scale_factor=scale, mode="bilinear", align_corners=False)
