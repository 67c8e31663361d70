"""The detector's training loop: real faces against the fakes made from them (:mod:`doppel.detect.data`).

An explicit loop (Lightning Fabric's advice): draw a batch, binary cross-entropy on the face's label plus
``boundary_weight`` x binary cross-entropy of the boundary head against the face X-ray, AdamW with a cosine
schedule, fp32 on the CPU. A step budget (not wall time: the machines this runs on are shared) decides the
length. Returns the model and its history; saving is the caller's (:func:`doppel.detect.model.save`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from doppel.core.config import Settings
from doppel.core.progress import ProgressFn, no_progress
from doppel.detect.data import FaceSet, Mix, make_batch
from doppel.detect.model import DetectorConfig, FaceForensicsNet

log = logging.getLogger(__name__)


class TrainSettings(Settings):
    """How to train (or fine-tune) a detector."""

    steps: int = Field(1500, ge=1)
    batch: int = Field(32, ge=2)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    boundary_weight: float = Field(1.0, ge=0)
    real_share: float = Field(0.5, gt=0, lt=1)
    sbi_share: float = Field(0.6, ge=0, le=1)
    paired: bool = False
    """Every face in a batch both real and made fake (``real_share`` is then 0.5; see :class:`Mix`)."""
    swap_share: float = Field(0.0, ge=0, le=1)
    """Of the fakes, the share taken from a face's doppel-swapped twin where the face set has one."""
    patch_weight: float = Field(0.0, ge=0)
    """With a ``patch`` head: weight of a per-location loss, each location labelled fake only where the blend
    mask covers it (0.3 or more), so a location outside a fake's blend learns "real" too."""
    balanced: bool = False
    """Draw every person equally often (else every face: a long clip then outweighs a short one)."""
    camera: bool = False
    """Random camera and delivery chains on every image (:func:`doppel.detect.data.camera_chain`)."""
    seed: int = 0
    threads: int = Field(1, ge=1)


@dataclass
class StepInfo:
    step: int
    total: int
    loss: float
    accuracy: float
    seconds: float


@dataclass
class TrainResult:
    model: FaceForensicsNet
    steps: int
    seconds: float
    cpu_seconds: float
    history: list[dict[str, float]] = field(default_factory=list)


def train(faces: FaceSet, settings: TrainSettings, *, config: DetectorConfig | None = None,
          init: FaceForensicsNet | None = None, progress: ProgressFn = no_progress,
          on_step: Callable[[StepInfo], None] | None = None) -> TrainResult:
    """Train a detector on ``faces`` (at least two people, so merge-style fakes have donors), from ``init``
    (fine-tuning) or from scratch with ``config``."""
    torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    model = init if init is not None else FaceForensicsNet(config or DetectorConfig())
    size = model.config.input_size
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    warm = min(100, settings.steps // 10 + 1)

    def lr_at(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, settings.steps - warm)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    mix = Mix(real=settings.real_share, sbi=settings.sbi_share, paired=settings.paired, camera=settings.camera,
              swap=settings.swap_share)
    draw = settings.batch // 2 if settings.paired else settings.batch
    weights = None
    if settings.balanced:
        _, inverse, counts = np.unique(faces.people.astype(str), return_inverse=True, return_counts=True)
        weights = 1.0 / counts[inverse]
        weights = weights / weights.sum()
    history: list[dict[str, float]] = []
    start, cpu0 = time.perf_counter(), time.process_time()
    running = {"loss": 0.0, "acc": 0.0}
    for step in range(settings.steps):
        idx = rng.choice(len(faces), draw, p=weights) if weights is not None else rng.integers(0, len(faces), draw)
        masks: list[np.ndarray] | None = [] if settings.patch_weight > 0 else None
        x, y, b = make_batch(faces, idx, rng, mix, size=size, masks=masks)
        out = model(torch.from_numpy(x))
        target = torch.from_numpy(y)
        cls = F.binary_cross_entropy_with_logits(out.logit, target)
        bmap = F.binary_cross_entropy_with_logits(out.boundary, torch.from_numpy(b))
        loss = cls + settings.boundary_weight * bmap
        if masks is not None and out.patches is not None:
            grid = F.adaptive_avg_pool2d(torch.from_numpy(np.stack(masks))[:, None], out.patches.shape[-2:])
            loss = loss + settings.patch_weight * F.binary_cross_entropy_with_logits(out.patches, (grid >= 0.3).float())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        acc = float(((out.logit.detach() > 0).float() == target).float().mean())
        running = {"loss": 0.9 * running["loss"] + 0.1 * float(loss.detach()), "acc": 0.9 * running["acc"] + 0.1 * acc}
        progress(step + 1, settings.steps)
        if (step + 1) % 50 == 0 or step + 1 == settings.steps:
            row = {"step": step + 1, "loss": float(loss.detach()), "cls": float(cls.detach()),
                   "boundary": float(bmap.detach()),
                   "accuracy": acc, "lr": float(sched.get_last_lr()[0]), "seconds": time.perf_counter() - start}
            history.append(row)
            log.info("detector step %d: loss %.3f (cls %.3f), accuracy %.2f", step + 1, row["loss"], row["cls"],
                     running["acc"])
            if on_step is not None:
                on_step(StepInfo(step + 1, settings.steps, running["loss"], running["acc"],
                                 time.perf_counter() - start))
    model.eval()
    return TrainResult(model, settings.steps, time.perf_counter() - start, time.process_time() - cpu0, history)
