"""The model folder on disk, and atomic, pickle-free training checkpoints.

Layout of ``WS/models/NAME/``::

    config.json          ModelConfig (architecture and capacity), read by merge
    train.json           resolved TrainConfig, identities, base model, doppel version
    model.safetensors    EMA weights for inference (what merge loads), rewritten at each checkpoint
    checkpoints/step-000001200/state.safetensors   weights, EMA, optimiser tensors, RNG
    checkpoints/step-000001200/state.json          step, optimiser scalars, clock, sha256 of the tensors
    previews/step-000001200.png, preview.png       src | src recon | dst | dst recon | swap
    metrics.csv
    model.onnx           the swap path (NHWC in/out), exported on first ONNX use; export.json: its source weights
    runtime.json         which runtime (torch/onnx) swaps faster on this CPU, measured once per weights

A checkpoint directory is written under a temporary name and renamed into place; ``state.json``
carries the sha256 of ``state.safetensors`` and of its own other fields, and is checked field by
field on load, so a damaged checkpoint is detected and the previous one is used instead. The newest
:data:`KEEP` checkpoints are kept. ``model.safetensors`` carries the sha256 of its tensors in its
header, checked whenever it is loaded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from doppel.core.errors import ConfigError, InputError
from doppel.core.hashing import file_sha256
from doppel.io.atomic import write_text_atomic
from doppel.train.config import FORMAT_VERSION, ModelConfig

log = logging.getLogger(__name__)

KEEP = 2
CONFIG = "config.json"
TRAIN = "train.json"
WEIGHTS = "model.safetensors"


@dataclass
class State:
    """What a checkpoint restores: step, tensors by name, and JSON scalars."""

    step: int
    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any]
    path: Path


def read_config(model_dir: Path) -> ModelConfig:
    path = model_dir / CONFIG
    if not path.is_file():
        raise InputError(f"not a doppel model folder (no {CONFIG})", path=model_dir)
    try:
        data = json.loads(path.read_text())
        cfg = ModelConfig.model_validate(data)
    except (ValueError, TypeError) as exc:
        raise InputError(f"model config is unreadable ({exc})", path=path) from None
    if cfg.format_version > FORMAT_VERSION:
        raise InputError(f"model format v{cfg.format_version} is newer than this doppel (v{FORMAT_VERSION})",
                         path=path)
    return cfg


def write_config(model_dir: Path, cfg: ModelConfig) -> None:
    write_text_atomic(model_dir / CONFIG, json.dumps(cfg.model_dump(), indent=2, sort_keys=True) + "\n")


def check_compatible(saved: ModelConfig, wanted: ModelConfig, model_dir: Path, *, base: bool = False) -> None:
    """Refuse to resume a model (or start from a ``base`` model) with a different architecture or capacity."""
    diff = {k: (v, getattr(wanted, k)) for k, v in saved.model_dump().items() if getattr(wanted, k) != v}
    if diff:
        what = ", ".join(f"{k} {a!r} (asked {b!r})" for k, (a, b) in sorted(diff.items()))
        if base:
            raise ConfigError(f"base model has {what}; a model started from it must use the base's architecture "
                              "and capacity (drop those options or use the same --preset)", path=model_dir)
        raise ConfigError(f"model was trained with {what}; resume it without those options, "
                          "or train a new --model", path=model_dir)


def module_tensors(module: nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    """A module's state as contiguous CPU tensors under ``prefix.`` (safetensors needs contiguous)."""
    return {f"{prefix}.{k}": v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}


def load_module(module: nn.Module, tensors: dict[str, torch.Tensor], prefix: str) -> None:
    sub = {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
    try:
        missing, unexpected = module.load_state_dict(sub, strict=False)
    except RuntimeError as exc:
        raise ConfigError(f"weights do not fit the {prefix} network ({str(exc).strip().splitlines()[-1]})") from None
    if missing or unexpected:
        raise ConfigError(f"weights do not fit the {prefix} network (missing {missing[:3]}, "
                          f"unexpected {unexpected[:3]})")


def optimizer_tensors(opt: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Optimiser state split into tensors (for safetensors) and JSON scalars (param groups)."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {"param_groups": sd["param_groups"], "state": {}}
    for idx, st in sd["state"].items():
        for key, val in st.items():
            if isinstance(val, torch.Tensor):
                tensors[f"{prefix}.{idx}.{key}"] = val.detach().to("cpu").contiguous()
            else:
                scalars["state"].setdefault(str(idx), {})[key] = val
    return tensors, scalars


def load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], scalars: dict[str, Any],
                   prefix: str) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, val in tensors.items():
        if name.startswith(prefix + "."):
            idx, key = name[len(prefix) + 1:].split(".", 1)
            state.setdefault(int(idx), {})[key] = val
    for idx, st in scalars.get("state", {}).items():
        state.setdefault(int(idx), {}).update(st)
    groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in scalars["param_groups"]]
    opt.load_state_dict({"state": state, "param_groups": groups})
    # Saved tensors are contiguous; give moment buffers their parameter's strides again (channels-last
    # weights), since fused optimisers pair elements by memory position.
    for group in opt.param_groups:
        for param in group["params"]:
            for key, val in opt.state.get(param, {}).items():
                if isinstance(val, torch.Tensor) and val.shape == param.shape and val.stride() != param.stride():
                    opt.state[param][key] = torch.empty_like(param, dtype=val.dtype).copy_(val)


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """A digest of tensors' names, dtypes, shapes and bytes (what a bit flip in a weights file changes)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _meta_sha256(meta: dict[str, Any]) -> str:
    rest = {k: v for k, v in meta.items() if k != "meta_sha256"}
    return hashlib.sha256(json.dumps(rest, sort_keys=True).encode()).hexdigest()


def _check_meta(meta: Any) -> None:
    """Raise ``ValueError`` unless ``meta`` is a checkpoint's ``state.json`` as :func:`save` writes it."""
    if not isinstance(meta, dict):
        raise ValueError("state.json is not an object")
    if "meta_sha256" in meta and meta["meta_sha256"] != _meta_sha256(meta):
        raise ValueError("state.json does not match its checksum")
    step, elapsed, opt = meta.get("step"), meta.get("elapsed_s", 0.0), meta.get("opt")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise ValueError(f"step {step!r} is not a step count")
    if not isinstance(elapsed, int | float) or isinstance(elapsed, bool) or not 0 <= elapsed < 1e9:
        raise ValueError(f"elapsed_s {elapsed!r} is not a duration")
    for key in ("opt", "critic"):
        value = opt if key == "opt" else meta.get(key, {"param_groups": [], "state": {}})
        if not isinstance(value, dict) or not isinstance(value.get("param_groups"), list) \
                or not isinstance(value.get("state", {}), dict):
            raise ValueError(f"{key} is not an optimiser state")
    if not isinstance(meta.get("sha256"), str):
        raise ValueError("no checksum of the tensors")


def checkpoints_dir(model_dir: Path) -> Path:
    return model_dir / "checkpoints"


def save(model_dir: Path, step: int, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write checkpoint ``step`` atomically (temp dir + rename) and prune old ones; returns its folder."""
    root = checkpoints_dir(model_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:09d}"
    for stale in root.glob(".tmp-step-*"):  # left by a killed run (one trainer per model folder)
        shutil.rmtree(stale, ignore_errors=True)
    tmp = root / f".tmp-step-{step:09d}-{os.getpid()}"
    tmp.mkdir()
    try:
        st = tmp / "state.safetensors"
        save_file(tensors, str(st))
        with open(st, "rb+") as fh:
            os.fsync(fh.fileno())
        meta = {**meta, "step": step, "format_version": FORMAT_VERSION, "sha256": file_sha256(st)}
        meta["meta_sha256"] = _meta_sha256(meta)
        (tmp / "state.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(root)
    for old in sorted(root.glob("step-*"))[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_latest(model_dir: Path) -> State | None:
    """The newest intact checkpoint, falling back to older ones when the newest is damaged."""
    root = checkpoints_dir(model_dir)
    candidates = sorted(root.glob("step-*"), reverse=True) if root.is_dir() else []
    for path in candidates:
        try:
            meta = json.loads((path / "state.json").read_text())
            _check_meta(meta)
            st = path / "state.safetensors"
            if file_sha256(st) != meta["sha256"]:
                raise ValueError("checksum mismatch")
            tensors = load_file(str(st))
        except (OSError, ValueError, KeyError) as exc:
            log.warning("checkpoint %s is damaged (%s); trying the previous one", path, exc)
            continue
        return State(step=int(meta["step"]), tensors=tensors, meta=meta, path=path)
    if candidates:
        raise InputError("every checkpoint is damaged; delete the folder to start again", path=root)
    return None


def save_weights(model_dir: Path, ema: nn.Module, meta: dict[str, str]) -> None:
    """The inference weights (EMA), atomically, with string metadata in the safetensors header."""
    write_weights(model_dir, {k: v.detach().cpu().contiguous() for k, v in ema.state_dict().items()}, meta)


def write_weights(model_dir: Path, tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
    """``model_dir``'s inference weights from ``tensors``, atomically, with their checksum (what
    :func:`load_weights` checks) and string ``meta`` in the header."""
    path = model_dir / WEIGHTS
    tmp = path.with_name(f".{WEIGHTS}.tmp")
    save_file(tensors, str(tmp), metadata={**meta, "tensors_sha256": tensors_sha256(tensors)})
    os.replace(tmp, path)


def load_weights(model_dir: Path, module: nn.Module) -> None:
    path = model_dir / WEIGHTS
    if not path.is_file():
        raise InputError(f"model has no {WEIGHTS} yet; train it first", path=model_dir)
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), framework="pt") as fh:
            expected = (fh.metadata() or {}).get("tensors_sha256")
    except Exception as exc:  # safetensors raises its own error types
        raise InputError(f"weights are unreadable ({exc})", path=path) from None
    if expected is not None and tensors_sha256(tensors) != expected:
        raise InputError("weights are damaged (their checksum does not match); retrain or restore the model",
                         path=path)
    try:
        missing, unexpected = module.load_state_dict(tensors, strict=False)
    except RuntimeError as exc:  # shapes that do not match the architecture in config.json
        first = str(exc).strip().splitlines()[-1].strip() if str(exc).strip() else "size mismatch"
        raise ConfigError(f"weights do not fit {CONFIG} ({first})", path=path) from None
    if missing or unexpected:
        raise ConfigError(f"weights do not fit {CONFIG} (missing {missing[:3]}, unexpected {unexpected[:3]})",
                          path=path)
