"""Named training + merge recipes for ``bench/quality_lab.py``; combine parts with '+', e.g. ``late+em10``.

A recipe starts from the ``cpu`` preset (model, batch, lr, EMA) and the default merge settings;
each part changes one lever. ``oracleR`` trains nothing useful: it registers a 1-step model and
merges with a swapper that returns the destination's own crop at R px, the ceiling of a perfect
R px model through the merge (resolution and compositing losses only).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Spec:
    model: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    merge: dict[str, Any] = field(default_factory=dict)
    late: dict[str, Any] = field(default_factory=dict)   # train overrides for the last late_fraction
    late_fraction: float = 0.0
    oracle: int | None = None
    detail: dict[str, Any] | None = None  # DetailSpec overrides; None: no detail network
    detail_config: dict[str, Any] = field(default_factory=dict)
    detail_fraction: float = 0.0  # of the budget, after the face model
    legacy_merge: bool = False  # bilinear crop cut and placement (the merge before the resampling change)
    linear_place: bool = False  # bilinear placement only
    base: bool = False  # start the face model from the base model (the shipped one, else research/cache's)


PARTS: dict[str, Callable[[Spec], None]] = {}


def part(name: str) -> Callable[[Callable[[Spec], None]], Callable[[Spec], None]]:
    def deco(fn: Callable[[Spec], None]) -> Callable[[Spec], None]:
        PARTS[name] = fn
        return fn
    return deco


@part("baseline")
def _baseline(s: Spec) -> None:
    pass


for _r in (96, 128, 192, 256, 288, 320, 384):
    PARTS[f"oracle{_r}"] = (lambda r: lambda s: setattr(s, "oracle", r))(_r)
for _r in (128, 160, 192):
    PARTS[f"res{_r}"] = (lambda r: lambda s: s.model.update(resolution=r))(_r)


@part("lite")
def _lite(s: Spec) -> None:
    """A quarter of the decoder's work: d_dims 16, d_mask_dims 8 (more steps per CPU second)."""
    s.model.update(d_dims=16, d_mask_dims=8)


@part("contig")
def _contig(s: Spec) -> None:
    """Contiguous (NCHW) tensors instead of channels-last: faster for these narrow convolutions on AVX2."""
    s.train.update(channels_last=False)


@part("lite24")
def _lite24(s: Spec) -> None:
    s.model.update(d_dims=24, d_mask_dims=12)


@part("late")
def _late(s: Spec) -> None:
    """DeepFaceLab's late stage: random warp off for the last quarter."""
    s.late.update(random_warp=False)
    s.late_fraction = 0.25


@part("grad")
def _grad(s: Spec) -> None:
    """An image-gradient L1 in the face model's loss (weight 1: about the size of its DSSIM term)."""
    s.train.update(grad_weight=1.0)


@part("spec")
def _spec(s: Spec) -> None:
    """The face model's loss also matches the true face's amplitude spectrum in the top octave of its resolution
    (weight 0.1): texture of the right strength where random warp makes its exact place unpredictable."""
    s.train.update(spectrum_weight=0.1)


@part("spec3")
def _spec3(s: Spec) -> None:
    s.train.update(spectrum_weight=0.3)


@part("lategan")
def _lategan(s: Spec) -> None:
    """DeepFaceLab's late stage with its GAN: random warp off and the patch-GAN on (power 0.1) for the last quarter."""
    s.late.update(random_warp=False, gan_power=0.1)
    s.late_fraction = 0.25


@part("em10")
def _em10(s: Spec) -> None:
    """Eyes and mouth weigh 10 in the face model's pixel loss instead of the preset's 3 (DeepFaceLab's
    eyes_mouth_prio is about 30 on this scale)."""
    s.train.update(eyes_mouth_weight=10.0)


@part("l1")
def _l1(s: Spec) -> None:
    s.train.update(pixel_loss="l1")


@part("nosmooth")
def _nosmooth(s: Spec) -> None:
    s.merge.update(face_smoothing=0.0)


@part("sharpen05")
def _sharpen05(s: Spec) -> None:
    s.merge.update(sharpen=0.5)


@part("detail")
def _detail(s: Spec) -> None:
    """A detail network (x3: 96 -> 288 px) trained on the source faces for the last quarter of the budget, with
    ``DetailSpec``'s defaults: since the eighth session of 2026-12-01 those include the spectrum loss at 0.1 (runs
    before it trained without; ``detailnospec`` is that network now, and ``--from`` an older run needs
    ``LAB_RETRAIN_DETAIL=1`` to retrain an unchanged recipe's network under the new defaults)."""
    s.detail = {}
    s.detail_fraction = 0.25


@part("detail50")
def _detail50(s: Spec) -> None:
    """The detail network on the last half of the budget instead of a quarter (the face model gets half)."""
    s.detail = {**(s.detail or {})}
    s.detail_fraction = 0.5


@part("detailrecon")
def _detailrecon(s: Spec) -> None:
    s.detail = {**(s.detail or {}), "recon_share": 1.0}


@part("detailtrue")
def _detailtrue(s: Spec) -> None:
    s.detail = {**(s.detail or {}), "recon_share": 0.0}


@part("detailgan")
def _detailgan(s: Spec) -> None:
    """A conditional patch discriminator on the detail network's faces (after 300 steps), weight 0.01."""
    s.detail = {**(s.detail or {}), "adv_weight": 0.01}


@part("detailgan3")
def _detailgan3(s: Spec) -> None:
    s.detail = {**(s.detail or {}), "adv_weight": 0.03}


@part("detailgan10")
def _detailgan10(s: Spec) -> None:
    """The same discriminator at weight 0.1: on its own it tells the detail network's faces from true ones
    (86% of patches after 400 steps, ``research/ablation.md``), so a heavier weight has something to push."""
    s.detail = {**(s.detail or {}), "adv_weight": 0.1}


@part("detailema")
def _detailema(s: Spec) -> None:
    """The detail network's saved weights are an average of its last few hundred steps (EMA, decay 0.998):
    with the discriminator on, the last step is wherever its tug with the network stopped."""
    s.detail = {**(s.detail or {}), "ema": 0.998}


@part("detailblur")
def _detailblur(s: Spec) -> None:
    """Reconstructions blurred too (sigma up to 1 px), true faces up to 1.5 px: inputs as soft as a swap's."""
    s.detail = {**(s.detail or {}), "recon_blur": 1.0, "max_blur": 1.5}


@part("detailblur2")
def _detailblur2(s: Spec) -> None:
    s.detail = {**(s.detail or {}), "recon_blur": 1.5, "max_blur": 2.0}


@part("detailspec")
def _detailspec(s: Spec) -> None:
    """The detail network also matches the true faces' high-band amplitude spectrum (weight 0.1): texture of
    the right strength, wherever exactly it sits."""
    s.detail = {**(s.detail or {}), "spectrum_weight": 0.1}


@part("detailnospec")
def _detailnospec(s: Spec) -> None:
    """The detail network without the spectrum loss (the default before the eighth session of 2026-12-01)."""
    s.detail = {**(s.detail or {}), "spectrum_weight": 0.0}


@part("detailspec3")
def _detailspec3(s: Spec) -> None:
    s.detail = {**(s.detail or {}), "spectrum_weight": 0.3}


@part("detailwide")
def _detailwide(s: Spec) -> None:
    s.detail_config.update(channels=48, blocks=4, hr_channels=16)


@part("base")
def _base(s: Spec) -> None:
    """Start from the pretrained base model (d18 and d19 are held out of it; d0, d3, d12 and s18 are in it: see
    its data card)."""
    s.base = True


def base_dir() -> Any:
    """The base model a ``base`` recipe starts from: ``DOPPEL_LAB_BASE`` if set, else the shipped cpu base,
    else the one being pretrained in ``research/cache/ws-base``."""
    import os
    from pathlib import Path

    from doppel.train import bases

    if os.environ.get("DOPPEL_LAB_BASE"):
        return Path(os.environ["DOPPEL_LAB_BASE"])
    shipped = bases.shipped().get("cpu")
    # the lab's child runs a snapshot of the code without research/cache: DOPPEL_LAB_ROOT is the checkout
    root = Path(os.environ.get("DOPPEL_LAB_ROOT") or Path(__file__).resolve().parents[1])
    return shipped or root / "research" / "cache" / "ws-base" / "models" / "base-cpu"


@part("legacy")
def _legacy(s: Spec) -> None:
    s.legacy_merge = True


@part("linearplace")
def _linearplace(s: Spec) -> None:
    """The area-averaged cut with the face placed back bilinear (the placement half of ``legacy``)."""
    s.linear_place = True


class IdentitySwapper:
    """The oracle: returns the destination crop itself, with a full mask."""

    def __init__(self, resolution: int) -> None:
        self.resolution, self.face_type = resolution, "full"

    def swap(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return faces.astype(np.float32), np.ones((*faces.shape[:3], 1), np.float32)


class Recipe:
    def __init__(self, name: str) -> None:
        self.name = name
        self.spec = Spec()
        for p in name.split("+"):
            if p not in PARTS:
                raise SystemExit(f"unknown recipe part {p!r}; known: {', '.join(PARTS)}")
            PARTS[p](self.spec)

    def describe(self) -> dict[str, Any]:
        return dataclasses.asdict(self.spec)

    def _configs(self, extra: dict[str, Any]) -> tuple[Any, Any]:
        from doppel.train.config import PRESETS, model_config, train_config

        p = PRESETS["cpu"]
        model = model_config(p.model, **self.spec.model)
        train = train_config(**{**p.train_defaults(), "workers": 0, "preview_minutes": 2.0,
                                "checkpoint_minutes": 60.0, **self.spec.train, **extra})
        return model, train

    def phases(self, minutes: float | None, steps: int | None, cpu_minutes: float | None = None
               ) -> list[dict[str, Any]]:
        """RunSpec keyword arguments per phase; with ``cpu_minutes``, each phase gets ``cpu_minutes`` (its
        share of the CPU budget) instead of a wall-clock or step budget, for the caller to enforce."""
        s = self.spec
        if s.oracle is not None:
            model, train = self._configs({})
            model = model.model_copy(update={"resolution": s.oracle})
            return [{"model": model, "train": train, "iters": 1}]
        f = s.late_fraction
        budgets: list[dict[str, Any]]
        if cpu_minutes is not None:
            m = cpu_minutes * (1 - s.detail_fraction)
            budgets = [{"cpu_minutes": m * (1 - f)}, {"cpu_minutes": m * f}] if f else [{"cpu_minutes": m}]
        elif steps is not None:
            cut = round(steps * (1 - f))
            budgets = [{"iters": cut}, {"iters": steps}] if f else [{"iters": steps}]
        else:
            assert minutes is not None
            m = minutes * (1 - s.detail_fraction)
            budgets = [{"minutes": m * (1 - f)}, {"minutes": m * f}] if f else [{"minutes": m}]
        out = []
        for i, b in enumerate(budgets):
            model, train = self._configs(s.late if i == 1 else {})
            start = {"base": base_dir()} if s.base and i == 0 else {}
            out.append({"model": model, "train": train, **start, **b})
        return out

    def after_training(self, ws: Any, name: str, src: str, minutes: float | None, steps: int | None,
                       cpu_minutes: float | None = None) -> dict[str, Any]:
        if self.spec.detail is None:
            return {}
        import time

        from doppel.train.config import DetailConfig
        from doppel.train.detail import DetailSpec, train_detail

        stop = None
        if cpu_minutes is not None:
            end = time.process_time() + cpu_minutes * self.spec.detail_fraction * 60
            budget: dict[str, Any] = {}

            def stop() -> bool:
                return time.process_time() >= end
        elif minutes is not None:
            budget = {"minutes": minutes * self.spec.detail_fraction}
        else:
            budget = {"iters": max(1, round((steps or 0) * self.spec.detail_fraction))}
        cpu0 = time.process_time()
        res = train_detail(ws.faces.of(src), ws.models_dir() / name, src, DetailSpec(**{**budget, **self.spec.detail}),
                           config=DetailConfig(**self.spec.detail_config), should_stop=stop)
        cpu = time.process_time() - cpu0
        return {"detail_steps": res.steps, "detail_seconds": round(res.seconds, 1), "detail_cpu_s": round(cpu, 1),
                "detail_losses": {k: round(v, 5) for k, v in res.losses.items()}}

    def swapper(self, ws: Any, name: str) -> Any:
        if self.spec.legacy_merge:
            _legacy_merge()
        elif self.spec.linear_place:
            _legacy_merge(cut=False)
        if self.spec.oracle is not None:
            oracle = IdentitySwapper(self.spec.oracle)
            if self.spec.detail is None:
                return oracle
            from doppel.train.detail import load_detail
            from doppel.train.detail_swapper import DetailSwapper

            net = load_detail(ws.models_dir() / name)
            return oracle if net is None else DetailSwapper(oracle, net)
        return None

    def merge_settings(self) -> Any:
        from doppel.merge.settings import MergeSettings

        return MergeSettings().with_changes(self.spec.merge)


def _legacy_merge(cut: bool = True) -> None:
    """Put back the merge's bilinear crop cut (unless ``cut`` is False) and face placement (for A/B runs; this
    process only)."""
    import cv2

    from doppel.merge import composite, stages
    from doppel.ops.align import warp_to_face, warp_to_frame

    def plain_cut(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
        return warp_to_face(image, matrix, size)

    def place(face: np.ndarray, matrix: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        return warp_to_frame(face, matrix, shape, interpolation=cv2.INTER_LINEAR)

    if cut:
        stages.cut_face = plain_cut  # type: ignore[assignment]
        composite.cut_face = plain_cut  # type: ignore[assignment]
    composite.place_face = place  # type: ignore[assignment]


def recipe(name: str) -> Recipe:
    return Recipe(name)
