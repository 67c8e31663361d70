"""Segmenter folders on disk: ``config.json`` (:class:`~doppel.segment.unet.UNetConfig`),
``segmenter.safetensors`` (the weights, pickle-free) and ``train.json`` (how it was trained).

doppel ships one, the *base* segmenter, in the package (``doppel/segment/weights/``, with its data
card); a workspace keeps its fine-tuned one in ``WS/models/_segmenter/``. Nothing is downloaded.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from doppel.core.errors import ConfigError, InputError
from doppel.core.hashing import file_sha256
from doppel.io.atomic import atomic_path, write_text_atomic
from doppel.segment.unet import FORMAT_VERSION, UNet, UNetConfig

CONFIG = "config.json"
WEIGHTS = "segmenter.safetensors"
TRAIN = "train.json"


def base_dir() -> Path:
    """The folder of the base segmenter shipped inside the package."""
    return Path(str(resources.files("doppel.segment") / "weights"))


def is_segmenter(folder: Path) -> bool:
    return (folder / CONFIG).is_file() and (folder / WEIGHTS).is_file()


def read_config(folder: Path) -> UNetConfig:
    path = folder / CONFIG
    if not path.is_file():
        raise InputError(f"not a segmenter folder (no {CONFIG})", path=folder)
    try:
        cfg = UNetConfig.validated(json.loads(path.read_text()))
    except (ValueError, ConfigError) as exc:
        raise InputError(f"segmenter config is unreadable ({exc})", path=path) from None
    if cfg.format_version > FORMAT_VERSION:
        raise InputError(f"segmenter format v{cfg.format_version} is newer than this doppel (v{FORMAT_VERSION})",
                         path=path)
    return cfg


def load(folder: str | Path) -> UNet:
    """The segmenter stored in ``folder``, in eval mode on the CPU."""
    folder = Path(folder)
    model = UNet(read_config(folder))
    path = folder / WEIGHTS
    if not path.is_file():
        raise InputError(f"segmenter weights are missing ({WEIGHTS})", path=folder)
    try:
        tensors = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types
        raise InputError(f"segmenter weights are unreadable ({exc})", path=path) from None
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise InputError(f"segmenter weights do not fit its config (missing {len(missing)}, unexpected "
                         f"{len(unexpected)} tensors)", path=path)
    return model.eval().requires_grad_(False)


def save(folder: str | Path, model: UNet, train_meta: dict[str, Any]) -> Path:
    """Write ``model`` into ``folder`` (config, weights, then ``train.json``; each atomically)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / CONFIG, json.dumps(model.config.model_dump(), indent=2, sort_keys=True) + "\n")
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(folder / WEIGHTS) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "doppel-segmenter", "arch": model.config.arch})
    meta = {**train_meta, "weights_sha256": file_sha256(folder / WEIGHTS)}
    write_text_atomic(folder / TRAIN, json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n")
    return folder


def read_train(folder: Path) -> dict[str, Any]:
    path = folder / TRAIN
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise InputError(f"unreadable ({exc})", path=path) from None
    return data if isinstance(data, dict) else {}


def copy_of(model: UNet) -> UNet:
    """A trainable copy of ``model`` (same config and weights)."""
    out = UNet(model.config)
    out.load_state_dict({k: v.clone() for k, v in model.state_dict().items()})
    return out.train().requires_grad_(True)


def fresh(config: UNetConfig, seed: int = 0) -> UNet:
    """A new, randomly initialised segmenter."""
    torch.manual_seed(seed)
    return UNet(config)
