"""The training loop: a per-pair run (source and destination identity) or a base-model pretraining run.

(Long because set-up, the step, resume and the outputs of one run share its state; previews, the
held-out score and the metrics log are its outputs and read that state directly.)

:func:`train` reads top to bottom: 1. set up the device and process group, 2. load faces,
3. build (or resume, or start from a base) the model, EMA copy, optimiser and optional critic,
4. run optimiser steps until ``iters``/``minutes``/a stop request, checkpointing, writing
previews and metrics on the way, 5. write the final checkpoint and inference weights. A rerun into
the same folder resumes exactly where the last checkpoint was. The loop never opens the workspace:
it is handed the faces, the model folder and the source's consent record
(:func:`doppel.workflow.train.train` does that, and registers the model afterwards).
"""

from __future__ import annotations

import copy
import csv
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from doppel import __version__
from doppel.core.clock import now
from doppel.core.errors import ConfigError
from doppel.core.progress import ProgressFn, no_progress
from doppel.io.atomic import write_bytes_atomic, write_text_atomic
from doppel.io.image import encode_image
from doppel.provenance.consent import check_consent
from doppel.provenance.watermark import Watermarker, render_payload
from doppel.store.records import ConsentRecord, FaceRecord
from doppel.train import augment, bases, checkpoint, losses
from doppel.train.config import ModelConfig, TrainConfig
from doppel.train.data import FaceSet, PairDataset, face_hull_mask, load_faceset, make_loader, to_model
from doppel.train.models import as_face_model, build_model
from doppel.train.runtime import Dist, autocast, distributed, resolve_device, resolve_precision

if TYPE_CHECKING:
    from doppel.train.detail import DetailResult

log = logging.getLogger(__name__)

METRIC_FIELDS = ("step", "elapsed_s", "images_per_s", "loss", "src", "dst", "mask", "gan", "critic", "eval_ssim")


@dataclass(frozen=True)
class RunSpec:
    """One training run. For pretraining, ``src`` and ``dst`` are the same list of face sets."""

    name: str
    model: ModelConfig
    train: TrainConfig
    src: tuple[str, ...]
    dst: tuple[str, ...]
    pretrain: bool = False
    preset: str | None = None
    iters: int | None = None           # stop when the step count reaches this (absolute)
    minutes: float | None = None       # stop after this much wall time in this invocation
    base: Path | None = None           # model folder to start from
    device: str = "auto"
    holdout: float = 0.0               # fraction of faces kept out of training for evaluation
    late: float = 0.0                  # last share of the budget trained without random warp (see run())

    def __post_init__(self) -> None:
        if self.iters is not None and self.iters < 1:
            raise ConfigError(f"--iters {self.iters}: train until a step count of at least 1")
        if self.minutes is not None and not (math.isfinite(self.minutes) and self.minutes > 0):
            raise ConfigError(f"--minutes {self.minutes}: give a positive, finite number of minutes")
        if not (math.isfinite(self.holdout) and 0 <= self.holdout <= 0.5):
            raise ConfigError(f"--holdout {self.holdout}: a fraction of the faces in [0, 0.5]")
        if not (math.isfinite(self.late) and 0 <= self.late < 1):
            raise ConfigError(f"late stage {self.late}: a share of the budget in [0, 1)")


@dataclass
class StepInfo:
    step: int
    total: int | None
    elapsed: float
    images_per_s: float
    losses: dict[str, float]
    eta_s: float | None


@dataclass
class TrainResult:
    model_dir: Path
    step: int
    status: str                      # "done" or "interrupted"
    resumed_from: int | None
    steps_run: int
    seconds: float
    images_per_s: float
    losses: dict[str, float]
    device: str
    precision: str
    preview: Path | None
    world: int = 1
    main: bool = True                # rank 0 (the process that writes and reports)
    extra: dict[str, Any] = field(default_factory=dict)
    detail: DetailResult | None = None  # the detail network trained after the face model, if any
    late_from: int | None = None     # the step the late stage (random warp off) began, if it did


@dataclass(frozen=True)
class TrainData:
    """The faces in use of each identity a run trains on, by name (``src``/``dst`` of the spec)."""

    faces: dict[str, list[FaceRecord]]

    def of(self, names: tuple[str, ...]) -> dict[str, list[FaceRecord]]:
        return {n: self.faces[n] for n in names}


def train(spec: RunSpec, data: TrainData, folder: Path, *, consent: ConsentRecord | None = None,
          progress: ProgressFn = no_progress, on_step: Callable[[StepInfo], None] | None = None,
          should_stop: Callable[[], bool] = lambda: False) -> TrainResult:
    """Train (or resume) the model in ``folder``; see the module docstring. A pair run (not pretraining)
    refuses without an intact consent record for its source identity."""
    if not spec.pretrain:
        check_consent(consent, spec.src[0])
    with distributed(spec.device) as dd:
        return _Run(spec, data, folder, dd).run(progress, on_step, should_stop)


class _Run:
    def __init__(self, spec: RunSpec, data: TrainData, mdir: Path, dd: Dist) -> None:
        self.data, self.spec, self.dir, self.dd = data, spec, mdir, dd
        self.cfg, self.tc = spec.model, spec.train
        self.device = resolve_device(spec.device)
        if dd.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", dd.local_rank)
        self.amp = resolve_precision(self.tc.precision, self.device)

    # 1-3: set-up --------------------------------------------------------------------------------
    def _load_data(self) -> None:
        r, ft = self.cfg.resolution, self.cfg.face_type
        src = load_faceset(self.data.of(self.spec.src), r, ft)
        dst = src if self.spec.src == self.spec.dst else load_faceset(self.data.of(self.spec.dst), r, ft)
        self.src_eval: FaceSet | None = None
        self.dst_eval: FaceSet | None = None
        if self.spec.holdout > 0:
            src, self.src_eval = src.split(self.spec.holdout, self.tc.seed)
            dst, self.dst_eval = dst.split(self.spec.holdout, self.tc.seed + 1)
        self.src, self.dst = src, dst
        settings = augment.AugmentSettings(flip=self.tc.flip, warp=self.tc.random_warp)
        self.dataset = PairDataset(src, dst, batch=self.tc.batch, seed=self.tc.seed, rank=self.dd.rank,
                                   settings=settings)

    def _build(self) -> checkpoint.State | None:
        saved = self.dir / checkpoint.CONFIG
        state = None
        if saved.is_file():
            checkpoint.check_compatible(checkpoint.read_config(self.dir), self.cfg, self.dir)
            state = checkpoint.load_latest(self.dir)
        torch.manual_seed(self.tc.seed)
        model = build_model(self.cfg)
        if state is None and self.spec.base is not None:
            base_cfg = checkpoint.read_config(self.spec.base)
            checkpoint.check_compatible(base_cfg, self.cfg, self.spec.base, base=True)
            checkpoint.load_weights(self.spec.base, model)
            log.info("starting from base model %s", self.spec.base)
        model = model.to(self.device)
        if self.tc.channels_last:
            model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stub lacks it
        self.model = model
        self.ema = losses.EMA(model, copy.deepcopy(model), self.tc.ema_decay)
        fused = self.device.type in ("cpu", "cuda")
        self.opt = torch.optim.Adam(model.parameters(), lr=self.tc.lr, betas=(0.5, 0.999), fused=fused)
        self.critic: nn.Module | None = None
        self.critic_opt: torch.optim.Optimizer | None = None
        if self.tc.gan_power > 0:
            self.critic = losses.PatchDiscriminator().to(self.device)
            self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=self.tc.lr, betas=(0.5, 0.999))
        if state is not None:
            self._restore(state)
        self.train_model: nn.Module = model
        if self.dd.enabled:
            self.train_model = DistributedDataParallel(model)
            if self.critic is not None:
                self.critic = DistributedDataParallel(self.critic)
        if self.tc.compile:
            self.train_model = torch.compile(self.train_model)  # type: ignore[assignment]
        return state

    def _restore(self, state: checkpoint.State) -> None:
        t = state.tensors
        checkpoint.load_module(self.model, t, "model")
        checkpoint.load_module(self.ema.shadow, t, "ema")
        checkpoint.load_optimizer(self.opt, t, state.meta["opt"], "opt")
        if self.critic is not None and self.critic_opt is not None:
            if "critic" in state.meta:
                checkpoint.load_module(self.critic, t, "critic")
                checkpoint.load_optimizer(self.critic_opt, t, state.meta["critic"], "critic_opt")
            else:  # GAN switched on part-way, as is usual once the faces are sharp: a fresh critic
                log.info("no GAN critic in the checkpoint; starting a new one")
        torch.set_rng_state(t["rng.torch"])
        log.info("resumed %s from step %d (%s)", self.spec.name, state.step, state.path.name)

    def _workers(self) -> int:
        """Loader processes: on a CPU they would take cores from the model (augmenting a batch costs
        a few % of a step), so none; on an accelerator, enough to keep it fed."""
        if self.tc.workers is not None:
            return self.tc.workers
        return 0 if self.device.type == "cpu" else min(4, os.cpu_count() or 1)

    # 4: the steps -------------------------------------------------------------------------------
    def _step(self, batches: list[dict[str, torch.Tensor]], step: int) -> dict[str, float]:
        tc = self.tc
        self.opt.zero_grad(set_to_none=True)
        totals: dict[str, float] = {}
        for raw in batches:
            b = to_model(raw, self.device, tc.channels_last)
            with autocast(self.device, self.amp):
                out = self.train_model(b["src_in"], b["dst_in"])
            parts: dict[str, torch.Tensor] = {}
            for side, pred, pmask in (("src", out.src, out.src_mask), ("dst", out.dst, out.dst_mask)):
                fl = losses.face_loss(pred.float(), b[f"{side}_target"], b[f"{side}_mask"], b[f"{side}_em"],
                                      ssim_weight=tc.ssim_weight, pixel=tc.pixel_loss, pixel_weight=tc.pixel_weight,
                                      eyes_mouth_weight=tc.eyes_mouth_weight, grad_weight=tc.grad_weight,
                                      spectrum_weight=tc.spectrum_weight)
                parts[side] = torch.stack(list(fl.values())).sum()
                mask = losses.mask_loss(pmask.float(), b[f"{side}_mask"], tc.mask_weight)
                parts["mask"] = parts["mask"] + mask if "mask" in parts else mask
            if self.critic is not None:
                fake = out.src.float() * b["src_mask"]
                with autocast(self.device, self.amp):
                    parts["gan"] = losses.gan_generator_loss(self.critic, fake, tc.gan_power).float()
            loss = torch.stack(list(parts.values())).sum() / len(batches)
            loss.backward()
            if self.critic is not None and self.critic_opt is not None:
                self.critic_opt.zero_grad(set_to_none=True)
                with autocast(self.device, self.amp):
                    closs = losses.gan_critic_loss(self.critic, b["src_target"] * b["src_mask"], fake).float()
                closs.backward()
                self.critic_opt.step()
                totals["critic"] = totals.get("critic", 0.0) + float(closs.detach()) / len(batches)
            for k, v in parts.items():
                totals[k] = totals.get(k, 0.0) + float(v.detach()) / len(batches)
            totals["loss"] = totals.get("loss", 0.0) + float(loss.detach())
        self.opt.step()
        self.ema.update(step)
        return totals

    def run(self, progress: ProgressFn, on_step: Callable[[StepInfo], None] | None,
            should_stop: Callable[[], bool]) -> TrainResult:
        spec, tc = self.spec, self.tc
        self._load_data()
        state = self._build()
        start = state.step if state is not None else 0
        elapsed0 = float(state.meta.get("elapsed_s", 0.0)) if state is not None else 0.0
        if self.dd.main:
            self._write_meta(resumed=state is not None)
            self._trim_metrics(start)
        stop_at = spec.iters if spec.iters is not None else 2**62
        if start >= stop_at:
            log.info("model %s is already at step %d >= %d", spec.name, start, stop_at)
        def batches_from(first: int) -> Iterator[dict[str, torch.Tensor]]:
            return iter(make_loader(self.dataset, first * tc.accum, stop_at * tc.accum if stop_at < 2**62 else 2**62,
                                    self._workers()))

        deadline = time.monotonic() + spec.minutes * 60 if spec.minutes is not None else math.inf
        t0 = time.monotonic()
        last_ckpt = last_preview = t0
        step, status, last_losses = start, "done", {}
        ips = 0.0
        window: list[tuple[float, int]] = [(t0, start)]
        per_step = 2 * tc.batch * tc.accum * self.dd.world
        self.late_from: int | None = None
        it = batches_from(start)
        # DeepFaceLab's late stage: the last share of the budget sees unwarped inputs, so the model learns
        # the exact faces (warped inputs teach it to generalise; they also keep its output soft). A step
        # budget is the model's own (absolute), so an interrupted run resumed with the same command switches
        # at the same step; a time budget is this invocation's.
        late = spec.late > 0 and tc.random_warp and not spec.pretrain
        late_time = t0 + (1 - spec.late) * spec.minutes * 60 if late and spec.minutes is not None else math.inf
        late_step = math.ceil((1 - spec.late) * spec.iters) if late and spec.iters is not None else 2**62
        while step < stop_at:
            if should_stop() or time.monotonic() >= deadline:
                status = "interrupted" if should_stop() else "done"
                break
            if late and (step >= late_step or time.monotonic() >= late_time):
                late = False
                del it
                self.dataset.settings = replace(self.dataset.settings, warp=False)
                it = batches_from(step)
                self.late_from = step
                log.info("late stage: random warp off from step %d", step)
            batches = [next(it) for _ in range(tc.accum)]
            last_losses = self._step(batches, step)
            step += 1
            now_t = time.monotonic()
            window = [*window[-20:], (now_t, step)]
            dt, ds = window[-1][0] - window[0][0], window[-1][1] - window[0][1]
            ips = per_step * ds / dt if dt > 0 else 0.0
            total = spec.iters
            eta = None
            if ds and dt > 0:
                rate = ds / dt
                eta_iters = (stop_at - step) / rate if spec.iters is not None else math.inf
                eta = min(eta_iters, deadline - now_t)
                eta = None if math.isinf(eta) else max(0.0, eta)
            elapsed = elapsed0 + now_t - t0
            if self.dd.main:
                progress(step, total)
                if on_step is not None:
                    on_step(StepInfo(step, total, elapsed, ips, last_losses, eta))
                if now_t - last_preview >= tc.preview_minutes * 60:
                    self.preview(step)
                    extra = {"eval_ssim": self.evaluate()} if self.src_eval is not None else {}
                    self._metrics_row(step, elapsed, ips, {**last_losses, **extra})
                    last_preview = time.monotonic()
                elif step % 10 == 0 or step == 1:
                    self._metrics_row(step, elapsed, ips, last_losses)
            if now_t - last_ckpt >= tc.checkpoint_minutes * 60:
                self._checkpoint(step, elapsed)
                last_ckpt = time.monotonic()
        del it
        seconds = time.monotonic() - t0
        elapsed = elapsed0 + seconds
        preview_path = None
        if step > start or state is None:
            self._checkpoint(step, elapsed)
        if self.dd.main:
            preview_path = self.preview(step)
            if step > start and (self.src_eval is not None or self._last_row != step):
                extra = {"eval_ssim": self.evaluate()} if self.src_eval is not None else {}
                self._metrics_row(step, elapsed, ips, {**last_losses, **extra})
        run_ips = per_step * (step - start) / seconds if seconds > 0 and step > start else 0.0
        return TrainResult(late_from=self.late_from, model_dir=self.dir, step=step, status=status,
                           resumed_from=start if state else None,
                           steps_run=step - start, seconds=seconds, images_per_s=run_ips, losses=last_losses,
                           device=str(self.device), precision=str(self.amp or "fp32").replace("torch.", ""),
                           preview=preview_path, world=self.dd.world, main=self.dd.main)

    # 4-5: outputs -------------------------------------------------------------------------------
    def _checkpoint(self, step: int, elapsed: float) -> None:
        if self.dd.main:
            tensors = {**checkpoint.module_tensors(self.model, "model"),
                       **checkpoint.module_tensors(self.ema.shadow, "ema"),
                       "rng.torch": torch.get_rng_state()}
            opt_t, opt_s = checkpoint.optimizer_tensors(self.opt, "opt")
            tensors.update(opt_t)
            meta: dict[str, Any] = {"opt": opt_s, "elapsed_s": elapsed, "saved_at": now(),
                                    "doppel_version": __version__}
            if self.critic is not None and self.critic_opt is not None:
                critic = self.critic.module if isinstance(self.critic, DistributedDataParallel) else self.critic
                tensors.update(checkpoint.module_tensors(critic, "critic"))
                c_t, c_s = checkpoint.optimizer_tensors(self.critic_opt, "critic_opt")
                tensors.update(c_t)
                meta["critic"] = c_s
            checkpoint.save(self.dir, step, tensors, meta)
            checkpoint.save_weights(self.dir, self.ema.shadow, {"step": str(step), "arch": self.cfg.arch})
            log.info("checkpoint at step %d", step)
        if self.dd.enabled:
            torch.distributed.barrier()

    def _write_meta(self, *, resumed: bool) -> None:
        meta = {"train": self.tc.model_dump(), "src": list(self.spec.src), "dst": list(self.spec.dst),
                "pretrain": self.spec.pretrain, "preset": self.spec.preset, "late": self.spec.late,
                "base": bases.label(self.spec.base) if self.spec.base else None, "doppel_version": __version__,
                "device": str(self.device), "precision": str(self.amp or "fp32"), "world": self.dd.world}
        old: dict[str, Any] = {}
        if (self.dir / checkpoint.TRAIN).is_file():
            old = json.loads((self.dir / checkpoint.TRAIN).read_text())
            if (old.get("src"), old.get("dst"), old.get("pretrain")) != (meta["src"], meta["dst"], meta["pretrain"]):
                raise ConfigError(f"model was trained on src {old.get('src')} / dst {old.get('dst')}; resume it with "
                                  "the same face sets, or train a new --model", path=self.dir)
            meta["base"] = old.get("base") if resumed else meta["base"]
        meta["holdout"] = self._held_out(old.get("holdout"), resumed)
        self.dir.mkdir(parents=True, exist_ok=True)
        checkpoint.write_config(self.dir, self.cfg)
        write_text_atomic(self.dir / checkpoint.TRAIN, json.dumps(meta, indent=2, sort_keys=True) + "\n")

    def _held_out(self, before: dict[str, Any] | None, resumed: bool) -> dict[str, Any]:
        """The source faces no step of this model has trained on (``train.json``'s ``holdout``): this run's
        held-out source faces, less any an earlier invocation trained on (a resumed run without that record
        trained on all of them). What ``doppel eval --self-swap`` re-renders; a base model (``base``) trained on
        the same footage would have seen them."""
        ids: set[int] = set()
        if self.src_eval is not None and not self.spec.pretrain:
            ids = {int(i) for i in self.src_eval.face_ids} - {int(i) for i in self.src.face_ids}
        if resumed:
            ids &= {int(i) for i in (before or {}).get("src_faces", [])}
        return {"fraction": self.spec.holdout, "src_faces": sorted(ids)}

    def _metrics_path(self) -> Path:
        return self.dir / "metrics.csv"

    def _trim_metrics(self, step: int) -> None:
        """Drop rows past the resumed step (they came from a run that was killed before checkpointing)."""
        path = self._metrics_path()
        if not path.is_file():
            return
        with open(path, newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if int(r["step"]) <= step]
        self._write_rows(rows)

    def _write_rows(self, rows: list[dict[str, Any]]) -> None:
        import io

        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=METRIC_FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
        write_text_atomic(self._metrics_path(), buf.getvalue())

    _last_row = -1

    def _metrics_row(self, step: int, elapsed: float, ips: float, parts: dict[str, float]) -> None:
        self._last_row = step
        path = self._metrics_path()
        new = not path.is_file()
        row = {"step": step, "elapsed_s": f"{elapsed:.2f}", "images_per_s": f"{ips:.3f}",
               **{k: f"{parts[k]:.5f}" for k in METRIC_FIELDS[3:] if k in parts}}
        with open(path, "a", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=METRIC_FIELDS, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow(row)

    @torch.no_grad()
    def evaluate(self, limit: int = 32) -> float:
        """Mean SSIM (11 px window) of EMA reconstructions of held-out src and dst faces, in the face hull."""
        scores = []
        for fs, side in ((self.src_eval, "src"), (self.dst_eval, "dst")):
            if fs is None or len(fs) == 0:
                continue
            pick = np.linspace(0, len(fs) - 1, min(limit, len(fs))).astype(int)
            x = torch.from_numpy(fs.images[pick]).permute(0, 3, 1, 2).float().div(255).to(self.device)
            out = self.ema.shadow(x, x)
            rec = out.src if side == "src" else out.dst
            mask = torch.from_numpy(np.stack([face_hull_mask(lm, x.shape[-1]) for lm in fs.landmarks[pick]]))
            mask = mask.to(self.device).float().div(255).unsqueeze(1)
            s = losses.ssim(rec.float(), x, 11).mean(1, keepdim=True)
            scores.append(float((s * mask).sum() / mask.sum().clamp_min(1)))
        return float(np.mean(scores)) if scores else float("nan")

    @torch.no_grad()
    def preview(self, step: int, count: int = 4) -> Path:
        """Grid PNG: one row per sample; columns src, src recon, dst, dst recon, swap (EMA weights)."""
        src = self.src_eval if self.src_eval is not None else self.src
        dst = self.dst_eval if self.dst_eval is not None else self.dst
        n = min(count, len(src), len(dst))
        pick_s = np.linspace(0, len(src) - 1, n).astype(int)
        pick_d = np.linspace(0, len(dst) - 1, n).astype(int)
        s = torch.from_numpy(src.images[pick_s]).permute(0, 3, 1, 2).float().div(255).to(self.device)
        d = torch.from_numpy(dst.images[pick_d]).permute(0, 3, 1, 2).float().div(255).to(self.device)
        ema = as_face_model(self.ema.shadow)
        out = ema(s, d)
        sw, _ = ema.swap(d)
        # Every face the model rendered carries the mark, tile by tile (a mosaic of faces cannot carry
        # one mark for the whole image; a face cut out of it can): payload of the model's name.
        mark = Watermarker(render_payload(f"preview:{self.spec.name}")).embed
        cols = []
        for c, rendered in ((s, False), (out.src, True), (d, False), (out.dst, True), (sw, True)):
            tiles = (c.float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)
            cols.append(np.vstack([mark(t) if rendered else t for t in tiles]))
        png = encode_image(np.hstack(cols), ".png")
        path = self.dir / "previews" / f"step-{step:09d}.png"
        write_bytes_atomic(path, png)
        write_bytes_atomic(self.dir / "preview.png", png)
        return path
