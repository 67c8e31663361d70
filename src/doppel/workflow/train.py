"""Training in a workspace: resolve the configs (preset -> base -> resume -> flags), check consent, hand
the face sets to the training loop, register the model it wrote."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from doppel.core.errors import ConfigError, InputError
from doppel.core.progress import ProgressFn, no_progress
from doppel.provenance.consent import require_consent
from doppel.store import Workspace
from doppel.train import checkpoint
from doppel.train.config import ModelConfig, TrainConfig, model_config, preset, train_config
from doppel.train.loop import RunSpec, StepInfo, TrainData, TrainResult
from doppel.train.loop import train as run_training

INHERITED_FROM_BASE = ("batch", "precision", "workers", "lr", "ema_decay")  # what a fine-tune keeps of its base


def model_dir(ws: Workspace, name: str) -> Path:
    if not name or "/" in name or name.startswith("."):
        raise ConfigError(f"bad model name {name!r}: use letters, digits, '-' or '_'")
    return ws.models_dir() / name


def resolve_base(ws: Workspace, base: str | Path) -> Path:
    """``--base``: a model name in this workspace or a path to a model folder."""
    p = Path(base)
    for cand in (ws.models_dir() / str(base), p):
        if (cand / checkpoint.CONFIG).is_file():
            return cand
    raise InputError("no such base model (neither a model of this workspace nor a model folder)", path=p)


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


def train(ws: Workspace, spec: RunSpec, *, progress: ProgressFn = no_progress,
          on_step: Callable[[StepInfo], None] | None = None,
          should_stop: Callable[[], bool] = lambda: False) -> TrainResult:
    """Train (or resume) the model ``spec.name`` of ``ws`` and register it; see :mod:`doppel.train.loop`.
    A pair run refuses without a consent record for its source identity."""
    folder = model_dir(ws, spec.name)
    consent = None if spec.pretrain else require_consent(ws, spec.src[0])
    data = TrainData({name: ws.faces.of(name) for name in dict.fromkeys((*spec.src, *spec.dst))})
    result = run_training(spec, data, folder, consent=consent, progress=progress, on_step=on_step,
                          should_stop=should_stop)
    if result.main:
        cfg = spec.model
        ws.models.register(spec.name, folder_rel=ws.rel(folder), arch=cfg.arch, preset=spec.preset,
                           resolution=cfg.resolution, face_type=cfg.face_type,
                           src=None if spec.pretrain else spec.src[0], dst=None if spec.pretrain else spec.dst[0],
                           base=str(spec.base) if spec.base else None, step=result.step)
    return result
