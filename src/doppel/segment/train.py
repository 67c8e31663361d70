"""The segmenter's training loop: explicit, time- or step-budgeted, on the CPU in minutes.

Each step draws a fresh batch (:func:`doppel.segment.data.make_batch`: synthetic occluders, warp,
colour) and minimises weighted binary cross-entropy on both channels plus a soft Dice term on the
visible face; pixels of weight 0 (unknown) do not count. The learning rate warms up, then follows
a cosine to a tenth over the budget. The same loop trains the base segmenter from scratch and
fine-tunes it for a workspace (with the artist's polygons as part of every batch).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, model_validator

from doppel.core.config import Settings
from doppel.core.progress import ProgressFn, no_progress
from doppel.segment.data import Sample, make_batch
from doppel.segment.unet import UNet

log = logging.getLogger(__name__)

DICE_WEIGHT = 0.5


class SegTrainConfig(Settings):
    """How long and how a segmenter trains. Stops at ``steps`` or after ``minutes``, whichever comes first."""

    FLAGS: ClassVar[dict[str, str]] = {"minutes": "--minutes", "steps": "--steps", "batch": "--batch",
                                       "lr": "--lr", "seed": "--seed", "threads": "--threads"}

    minutes: float | None = Field(10.0, gt=0)
    steps: int | None = Field(None, ge=1)
    batch: int = Field(16, ge=1, le=256)
    lr: float = Field(2e-3, gt=0, le=1.0)
    weight_decay: float = Field(1e-4, ge=0)
    warmup: int = Field(30, ge=0)
    seed: int = 0
    threads: int = Field(1, ge=1, le=64)
    labelled_share: float = Field(0.5, ge=0.0, le=1.0)
    freeze_norm: bool = False  # keep the normalisation statistics (fine-tuning on a few faces)

    @model_validator(mode="after")
    def _budget(self) -> SegTrainConfig:
        if self.minutes is None and self.steps is None:
            raise ValueError("give a budget: minutes or steps")
        return self


@dataclass
class TrainReport:
    steps: int
    seconds: float
    images: int
    final_loss: float
    losses: list[tuple[int, float]] = field(default_factory=list)  # (step, mean loss since the last entry)

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "images_per_second": round(self.images_per_second, 2)}


def _dice(p: torch.Tensor, t: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return 1.0 - (2 * (p * t * w).sum() + 1.0) / ((p * w).sum() + (t * w).sum() + 1.0)


def loss_fn(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted BCE over both channels + :data:`DICE_WEIGHT` x soft Dice of each channel (the Dice term
    keeps the rare glasses pixels from being drowned by the many that are not glasses)."""
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    loss = (bce * weights).sum() / weights.sum().clamp_min(1.0)
    p, known = torch.sigmoid(logits), (weights > 0).float()
    dice = _dice(p[:, 0], targets[:, 0], known[:, 0]) + _dice(p[:, 1], targets[:, 1], known[:, 1])
    return loss + DICE_WEIGHT * dice


def _lr(cfg: SegTrainConfig, step: int, fraction: float) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * min(fraction, 1.0))))


def _train_mode(model: UNet, freeze_norm: bool) -> None:
    model.train().requires_grad_(True)
    if freeze_norm:  # a batch of one person's faces would pull the base's statistics off
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.eval()


def train(model: UNet, samples: Sequence[Sample], cfg: SegTrainConfig, *, patches: Sequence[np.ndarray] = (),
          progress: ProgressFn = no_progress, should_stop: Callable[[], bool] = lambda: False,
          log_every: int = 25, on_log: Callable[[int, float], None] | None = None) -> TrainReport:
    """Train ``model`` in place on ``samples``; returns what happened. ``patches``: uint8 RGB face crops
    that synthetic occluders may be cut from (other people's faces). ``on_log(step, loss)`` runs every
    ``log_every`` steps (e.g. to save a snapshot)."""
    if not samples:
        raise ValueError("no training samples")
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    _train_mode(model, cfg.freeze_norm)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    budget = cfg.minutes * 60.0 if cfg.minutes is not None else None
    started = time.perf_counter()
    step, images, window, losses = 0, 0, [], []
    last = float("nan")
    labelled_share = cfg.labelled_share if any(s.labelled for s in samples) else 0.0
    while True:
        elapsed = time.perf_counter() - started
        if (cfg.steps is not None and step >= cfg.steps) or (budget is not None and elapsed >= budget) \
                or should_stop():
            break
        fraction = max(step / cfg.steps if cfg.steps else 0.0, elapsed / budget if budget else 0.0)
        for group in opt.param_groups:
            group["lr"] = _lr(cfg, step, fraction)
        batch = make_batch(samples, rng, cfg.batch, patches=patches, labelled_share=labelled_share)
        logits = model(torch.from_numpy(batch.images))
        loss = loss_fn(logits, torch.from_numpy(batch.targets), torch.from_numpy(batch.weights))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        images += cfg.batch
        last = float(loss.detach())
        window.append(last)
        if step % log_every == 0:
            losses.append((step, round(float(np.mean(window)), 5)))
            log.info("segmenter step %d loss %.4f", step, losses[-1][1])
            window = []
            if on_log is not None:
                on_log(step, losses[-1][1])
                _train_mode(model, cfg.freeze_norm)
        if cfg.steps is not None:
            progress(step, cfg.steps)
        else:
            progress(int(time.perf_counter() - started), int(budget or 0))
    if window:
        losses.append((step, round(float(np.mean(window)), 5)))
    model.eval().requires_grad_(False)
    return TrainReport(step, round(time.perf_counter() - started, 2), images, last, losses)
