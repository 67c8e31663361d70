"""Training in a workspace: resolve the configs (preset -> base -> resume -> flags), check consent, hand
the face sets to the training loop, register the model it wrote; then, when asked (``--detail``,
the preset's default, see ``Preset.detail``), train the source's detail network on what the face model
makes of the source's faces."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from doppel.core.errors import ConfigError, InputError
from doppel.core.progress import ProgressFn, no_progress
from doppel.io.atomic import write_text_atomic
from doppel.provenance.consent import require_consent
from doppel.store import Workspace
from doppel.train import bases, checkpoint
from doppel.train.config import PRESETS, DetailConfig, ModelConfig, TrainConfig, model_config, preset, train_config
from doppel.train.detail import WEIGHTS as DETAIL_WEIGHTS
from doppel.train.detail import DetailResult, DetailSpec, train_detail
from doppel.train.loop import RunSpec, StepInfo, TrainData, TrainResult
from doppel.train.loop import train as run_training

log = logging.getLogger(__name__)

INHERITED_FROM_BASE = ("batch", "precision", "workers", "lr", "ema_decay")  # what a fine-tune keeps of its base
SLOW = 0.5  # warn when a run trains at under this share of the best rate this machine has shown for the model


def model_dir(ws: Workspace, name: str) -> Path:
    if not name or "/" in name or name.startswith("."):
        raise ConfigError(f"bad model name {name!r}: use letters, digits, '-' or '_'")
    return ws.models_dir() / name


def resolve_base(ws: Workspace, base: str | Path) -> Path:
    """``--base``: a shipped base (``doppel:NAME``), a model name in this workspace or a path to a model folder."""
    shipped = bases.resolve(str(base))
    if shipped is not None:
        return shipped
    if str(base).startswith(bases.PREFIX):
        raise ConfigError(f"no shipped base model {base!r}; doppel ships: "
                          + (", ".join(bases.PREFIX + n for n in bases.shipped()) or "none"))
    p = Path(base)
    for cand in (ws.models_dir() / str(base), p):
        if (cand / checkpoint.CONFIG).is_file():
            return cand
    raise InputError("no such base model (neither a model of this workspace nor a model folder)", path=p)


def default_base(ws: Workspace, name: str, cfg: ModelConfig, *, pretrain: bool) -> Path | None:
    """The shipped base a *new* pair model starts from: the one whose architecture and capacity are
    ``cfg``'s (the ``cpu`` preset's, as shipped), if any. None for a base-model run and for a model that
    already has checkpoints (a resume continues its own weights)."""
    ckpts = checkpoint.checkpoints_dir(model_dir(ws, name))
    if pretrain or (ckpts.is_dir() and any(ckpts.glob("step-*"))):
        return None
    hit = bases.for_config(cfg)
    if hit is None:
        log.info("no shipped base model has this architecture and capacity: training from scratch")
        return None
    return hit[1]


def resolve_configs(ws: Workspace, name: str, preset_name: str | None, model_flags: dict[str, Any],
                    train_flags: dict[str, Any], base_dir: Path | None = None
                    ) -> tuple[ModelConfig, TrainConfig, str | None]:
    """Model and train configs, merged once: the saved ones when resuming (a ``--preset`` given again
    replaces the model's capacity), else the base model's (with ``--base`` and no ``--preset``), else the
    preset's (default ``cpu``); then the flags that were given (``None`` means not given) on top.
    ``model_flags`` may carry ``_preset_given``: whether ``--preset`` was on the command line."""
    mdir = model_dir(ws, name)
    saved_train: dict[str, Any] = {}
    if (mdir / checkpoint.CONFIG).is_file():
        base_model = checkpoint.read_config(mdir)
        if (mdir / checkpoint.TRAIN).is_file():
            meta = json.loads((mdir / checkpoint.TRAIN).read_text())
            saved_train = meta.get("train", {})
            preset_name = preset_name or meta.get("preset")
        if preset_name and model_flags.get("_preset_given"):
            base_model = model_config(base_model, **preset(preset_name).model.model_dump())
    elif base_dir is not None and preset_name is None:
        base_model = checkpoint.read_config(base_dir)
        if (base_dir / checkpoint.TRAIN).is_file():
            meta = json.loads((base_dir / checkpoint.TRAIN).read_text())
            saved_train = {k: v for k, v in meta.get("train", {}).items() if k in INHERITED_FROM_BASE}
            preset_name = meta.get("preset")
    else:
        p = preset(preset_name or "cpu")
        preset_name = preset_name or "cpu"
        base_model = p.model
        saved_train = p.train_defaults()
    model_flags = {k: v for k, v in model_flags.items() if not k.startswith("_")}
    mcfg = model_config(base_model, **model_flags)
    tcfg = train_config(**{**saved_train, **{k: v for k, v in train_flags.items() if v is not None}})
    return mcfg, tcfg, preset_name


def _throughput_file() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "doppel" / "throughput.json"


def _throughput_key(spec: RunSpec) -> str:
    """This machine and this model's cost per step: what a remembered images/s is comparable with."""
    parts = [str(os.cpu_count()), torch.__version__, spec.device, spec.train.precision, str(spec.train.batch),
             spec.model.model_dump_json()]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _remembered() -> dict[str, float]:
    try:
        data = json.loads(_throughput_file().read_text())
        return {str(k): float(v) for k, v in data.items()} if isinstance(data, dict) else {}
    except (OSError, ValueError, TypeError):
        return {}


def _remember(key: str, images_per_s: float) -> None:
    data = _remembered()
    if images_per_s > data.get(key, 0.0):
        data[key] = round(images_per_s, 3)
        with contextlib.suppress(OSError):  # a read-only home: the warning is a courtesy, not a requirement
            write_text_atomic(_throughput_file(), json.dumps(data, indent=1, sort_keys=True) + "\n")


class _Watch:
    """Warns once when training runs far slower than this machine has trained this model before (a busy
    machine gives a time budget a fraction of its steps, and nothing else would say so)."""

    def __init__(self, spec: RunSpec, inner: Callable[[StepInfo], None] | None) -> None:
        self.key, self.inner = _throughput_key(spec), inner
        self.best = _remembered().get(self.key)
        self.started, self.warned = time.monotonic(), False
        self.first: int | None = None

    def __call__(self, info: StepInfo) -> None:
        if self.first is None:
            self.first = info.step
        ran = time.monotonic() - self.started
        if (not self.warned and self.best and ran > 60 and info.step - self.first >= 20
                and info.images_per_s < SLOW * self.best):
            self.warned = True
            log.warning("training at %.1f images/s, under half the %.1f this machine reached with this model "
                        "before: it is busy, so a time budget buys fewer steps", info.images_per_s, self.best)
        if self.inner is not None:
            self.inner(info)


@dataclass(frozen=True)
class DetailPlan:
    """A detail network to train after the face model: its ``config`` and its ``share`` of the budget.

    With a ``minutes`` budget the face model gets ``1 - share`` of it and the detail network the rest;
    with an ``iters`` budget the detail network gets ``share / (1 - share)`` of the face model's steps
    (at least one)."""

    config: DetailConfig = field(default_factory=DetailConfig)
    share: float = 0.25

    def __post_init__(self) -> None:
        if not 0 < self.share < 1:
            raise ConfigError(f"detail share {self.share}: a fraction of the budget in (0, 1)")

    def iters_for(self, face_iters: int) -> int:
        """Detail steps that go with ``face_iters`` face-model steps."""
        return max(1, round(face_iters * self.share / (1.0 - self.share)))


def detail_plan(preset_name: str | None, *, pretrain: bool = False, wanted: bool | None = None) -> DetailPlan | None:
    """The detail network a run trains: ``wanted`` when given (``--detail``/``--no-detail``), else the
    preset's default (``Preset.detail``); never for a base model (``pretrain``)."""
    if wanted is None:
        wanted = bool(preset_name in PRESETS and PRESETS[preset_name].detail)
    return DetailPlan() if wanted and not pretrain else None


LATE_SHARE = 0.25  # DeepFaceLab's practice: random warp off for the last part of training


def late_share(preset_name: str | None, *, pretrain: bool = False, wanted: bool | None = None) -> float:
    """The share of a run's face-model budget trained at the end with random warp off (``RunSpec.late``):
    ``wanted`` when given (``--late``/``--no-late``), else the preset's (``Preset.late``); never for a base
    model, which should stay general."""
    share = PRESETS[preset_name].late if preset_name in PRESETS else 0.0
    if wanted is None:
        wanted = share > 0
    return (share or LATE_SHARE) if wanted and not pretrain else 0.0


def train(ws: Workspace, spec: RunSpec, *, detail: DetailPlan | None = None, progress: ProgressFn = no_progress,
          on_step: Callable[[StepInfo], None] | None = None,
          should_stop: Callable[[], bool] = lambda: False) -> TrainResult:
    """Train (or resume) the model ``spec.name`` of ``ws`` and register it; see :mod:`doppel.train.loop`.
    A pair run refuses without a consent record for its source identity. With ``detail`` (a pair run
    only), the source's detail network follows (:func:`_train_detail`), on its share of the budget;
    ``result.detail`` says what it did."""
    folder = model_dir(ws, spec.name)
    consent = None if spec.pretrain else require_consent(ws, spec.src[0])
    data = TrainData({name: ws.faces.of(name) for name in dict.fromkeys((*spec.src, *spec.dst))})
    known = [] if spec.pretrain or spec.base is None else bases.known_people(spec.base, data.faces)
    for k in known:
        log.warning("the base model %s was pretrained on %s, who looks like %s here (identity distance %.2f): a "
                    "swap onto a person the base already knows tends to keep their identity; if the swap "
                    "does not read as the source, train from scratch (--no-base)",
                    bases.label(spec.base), k.person, k.identity, k.distance)  # type: ignore[arg-type]
    watch = _Watch(spec, on_step)
    plan = None if spec.pretrain else detail
    face_spec = spec if plan is None or spec.minutes is None else replace(spec, minutes=spec.minutes * (1 - plan.share))
    result = run_training(face_spec, data, folder, consent=consent, progress=progress, on_step=watch,
                          should_stop=should_stop)
    if result.main and result.steps_run >= 20 and result.seconds >= 60:
        _remember(watch.key, result.images_per_s)
    needed = PRESETS[spec.preset].min_steps if spec.preset in PRESETS else 0
    if result.main and spec.minutes is not None and result.step < needed:
        log.warning("the %g-minute budget bought %d steps; the %s preset needs about %d before a swap is usable: "
                    "give it more minutes (or a quieter machine)", spec.minutes, result.step, spec.preset, needed)
    if known:
        result.extra["base_knows"] = [{"identity": k.identity, "person": k.person, "distance": k.distance}
                                      for k in known]
    if result.main and spec.pretrain:
        bases.write_people(folder, data.faces)  # who this base learned, for the runs that start from it
    if result.main:
        cfg = spec.model
        ws.models.register(spec.name, folder_rel=ws.rel(folder), arch=cfg.arch, preset=spec.preset,
                           resolution=cfg.resolution, face_type=cfg.face_type,
                           src=None if spec.pretrain else spec.src[0], dst=None if spec.pretrain else spec.dst[0],
                           base=bases.label(spec.base) if spec.base else None, step=result.step)
        if plan is not None:
            result.detail = _train_detail(spec, data, result, plan, should_stop, progress)
        elif result.steps_run and (folder / DETAIL_WEIGHTS).is_file():
            log.warning("model %s has a detail network trained on its earlier weights; train it again with "
                        "--detail (or delete %s)", spec.name, folder / DETAIL_WEIGHTS)
    return result


def _train_detail(spec: RunSpec, data: TrainData, result: TrainResult, plan: DetailPlan,
                  should_stop: Callable[[], bool], progress: ProgressFn = no_progress) -> DetailResult | None:
    """The detail stage after a finished face model: none when the face model was interrupted, or ran no
    step in this invocation while it already has a detail network."""
    if result.status != "done" or should_stop():
        return None
    if result.steps_run == 0 and (result.model_dir / DETAIL_WEIGHTS).is_file():
        return None
    budget = (DetailSpec(minutes=spec.minutes * plan.share) if spec.minutes is not None
              else DetailSpec(iters=plan.iters_for(result.step)))
    log.info("training the detail network of %s (%s)", spec.name,
             f"{budget.minutes:.1f} min" if budget.minutes is not None else f"{budget.iters} steps")
    return train_detail(data.faces[spec.src[0]], result.model_dir, spec.src[0], budget, config=plan.config,
                        progress=progress, should_stop=should_stop)
