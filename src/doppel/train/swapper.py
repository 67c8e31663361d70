"""A trained model as a :class:`doppel.core.swap.Swapper`, on PyTorch or ONNX Runtime.

``load_swapper(model_dir)`` reads ``config.json`` and the EMA weights ``model.safetensors``.
``runtime="auto"`` uses PyTorch on CUDA/MPS; on the CPU it times both runtimes once per model and
machine (a few batches of 4 faces) and uses the faster, remembering the choice in
``runtime.json`` beside the weights. The ONNX file is exported (and checked against PyTorch) on
first use and redone whenever the weights change. A model folder with a detail network
(``detail.safetensors``, ``doppel train --detail``) returns faces ``scale`` x larger than its crops
(:class:`~doppel.train.detail_swapper.DetailSwapper`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from doppel.core.errors import ConfigError, InputError
from doppel.core.swap import Swapper
from doppel.io.atomic import write_text_atomic
from doppel.train import checkpoint, export
from doppel.train.models import config_of
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
        cfg = config_of(self.model)
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


RUNTIME_CHOICE = "runtime.json"


def _faster_on_cpu(model_dir: Path, batch: int = 4, repeats: int = 3) -> Runtime:
    """Time PyTorch and ONNX Runtime on this CPU for this model; cached per weights and machine."""
    key = {"weights_sha256": export.weights_sha256(model_dir), "cpus": os.cpu_count(), "torch": torch.__version__}
    path = model_dir / RUNTIME_CHOICE
    try:
        cached = json.loads(path.read_text())
        if cached.get("key") == key:
            if cached.get("runtime") == "torch":
                return "torch"
            if cached.get("runtime") == "onnx":
                return "onnx"
    except (OSError, ValueError):
        pass
    if not export.is_current(model_dir):
        export.export_onnx(model_dir)
    candidates: dict[str, Swapper] = {"torch": TorchSwapper(model_dir, torch.device("cpu")),
                                      "onnx": OnnxSwapper(model_dir)}
    r = candidates["torch"].resolution
    faces = np.random.default_rng(0).random((batch, r, r, 3), dtype=np.float32)
    timings = {}
    for name, sw in candidates.items():
        sw.swap(faces)  # warm-up
        runs = []
        for _ in range(repeats):
            t = time.perf_counter()
            sw.swap(faces)
            runs.append(time.perf_counter() - t)
        timings[name] = sorted(runs)[len(runs) // 2]
    choice = min(timings, key=lambda k: timings[k])
    log.info("swap runtime on CPU: %s (s per %d faces: %s)", choice, batch, timings)
    try:
        write_text_atomic(path, json.dumps({"key": key, "runtime": choice, "seconds_per_batch": timings,
                                            "batch": batch}, indent=2) + "\n")
    except OSError as exc:  # a read-only model folder: just do not cache
        log.warning("cannot cache the runtime choice in %s: %s", path, exc)
    return choice  # type: ignore[return-value]


def load_swapper(model_dir: Path, *, runtime: Runtime = "auto", device: str = "auto") -> Swapper:
    """The model in ``model_dir`` (``WS/models/NAME``) as a Swapper using its EMA weights, followed by its
    detail network when it has one (:mod:`doppel.train.detail`)."""
    from doppel.train.detail import load_detail
    from doppel.train.detail_swapper import DetailSwapper

    base = _load_face_model(Path(model_dir), runtime=runtime, device=device)
    net = load_detail(Path(model_dir))
    return base if net is None else DetailSwapper(base, net)


def _load_face_model(model_dir: Path, *, runtime: Runtime, device: str) -> Swapper:
    checkpoint.read_config(model_dir)
    if not (model_dir / checkpoint.WEIGHTS).is_file():
        raise InputError(f"model has no {checkpoint.WEIGHTS} yet; train it first", path=model_dir)
    dev = resolve_device(device)
    if runtime == "auto":
        runtime = _faster_on_cpu(model_dir) if dev.type == "cpu" else "torch"
    if runtime == "onnx":
        if dev.type != "cpu":
            raise ConfigError(f"the ONNX runtime here runs on the CPU only; use runtime='torch' on {dev}")
        if not export.is_current(model_dir):
            export.export_onnx(model_dir)
        return OnnxSwapper(model_dir)
    if runtime == "torch":
        return TorchSwapper(model_dir, dev)
    raise ConfigError(f"unknown runtime {runtime!r}; use auto, torch or onnx")
