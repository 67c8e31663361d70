"""A trained model as a :class:`doppel.core.swap.Swapper`, on PyTorch or ONNX Runtime.

``load_swapper(model_dir)`` reads ``config.json`` and the EMA weights ``model.safetensors``.
``runtime="auto"`` uses ONNX Runtime on the CPU (it measured faster there: see
``bench/bench_train.py``, ``inference``) and PyTorch on CUDA/MPS; the ONNX file is exported (and
checked against PyTorch) on first use and redone whenever the weights change.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from doppel.core.errors import ConfigError, InputError
from doppel.core.swap import Swapper
from doppel.train import checkpoint, export
from doppel.train.runtime import resolve_device

log = logging.getLogger(__name__)

Runtime = Literal["auto", "torch", "onnx"]


def _check(faces: np.ndarray, r: int) -> np.ndarray:
    if faces.ndim != 4 or faces.shape[1:] != (r, r, 3):
        raise InputError(f"expected faces of shape (N, {r}, {r}, 3), got {faces.shape}")
    return np.ascontiguousarray(faces, dtype=np.float32)


class TorchSwapper:
    """PyTorch inference with the EMA weights (fp32)."""

    def __init__(self, model_dir: Path, device: torch.device, batch: int = 16) -> None:
        self.model = export.load_inference_model(model_dir).to(device)
        self.device, self.batch = device, batch
        cfg = self.model.config  # type: ignore[union-attr]
        self.resolution: int = cfg.resolution
        self.face_type: str = cfg.face_type

    @torch.inference_mode()
    def swap(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        faces = _check(faces, self.resolution)
        outs, masks = [], []
        for i in range(0, len(faces), self.batch):
            x = torch.from_numpy(faces[i:i + self.batch]).to(self.device).permute(0, 3, 1, 2)
            face, mask = self.model.swap(x)  # type: ignore[operator]
            outs.append(face.permute(0, 2, 3, 1).float().cpu().numpy())
            masks.append(mask.permute(0, 2, 3, 1).float().cpu().numpy())
        if not outs:
            r = self.resolution
            return np.zeros((0, r, r, 3), np.float32), np.zeros((0, r, r, 1), np.float32)
        return np.concatenate(outs), np.concatenate(masks)


class OnnxSwapper:
    """ONNX Runtime inference of ``model.onnx`` (see :mod:`doppel.train.export`)."""

    def __init__(self, model_dir: Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        cfg = checkpoint.read_config(model_dir)
        self.resolution: int = cfg.resolution
        self.face_type: str = cfg.face_type
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(model_dir / export.ONNX_NAME), opts,
                                            providers=["CPUExecutionProvider"])

    def swap(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        faces = _check(faces, self.resolution)
        face, mask = self.session.run(None, {"faces": faces})
        return face, mask


def load_swapper(model_dir: Path, *, runtime: Runtime = "auto", device: str = "auto") -> Swapper:
    """The model in ``model_dir`` (``WS/models/NAME``) as a Swapper using its EMA weights."""
    model_dir = Path(model_dir)
    checkpoint.read_config(model_dir)
    if not (model_dir / checkpoint.WEIGHTS).is_file():
        raise InputError(f"model has no {checkpoint.WEIGHTS} yet; train it first", path=model_dir)
    dev = resolve_device(device)
    if runtime == "auto":
        runtime = "onnx" if dev.type == "cpu" else "torch"
    if runtime == "onnx":
        if dev.type != "cpu":
            raise ConfigError(f"the ONNX runtime here runs on the CPU only; use runtime='torch' on {dev}")
        if not export.is_current(model_dir):
            export.export_onnx(model_dir)
        return OnnxSwapper(model_dir)
    if runtime == "torch":
        return TorchSwapper(model_dir, dev)
    raise ConfigError(f"unknown runtime {runtime!r}; use auto, torch or onnx")
