"""Export the swap path (destination face in, source-identity face and mask out) to ONNX.

The exported graph takes and returns the :class:`~doppel.core.swap.Swapper` layout directly:
input ``faces`` float32 ``(N, R, R, 3)`` RGB in [0, 1]; outputs ``swapped`` ``(N, R, R, 3)`` and
``mask`` ``(N, R, R, 1)``, both in [0, 1]; the batch axis is dynamic. It uses the EMA weights of
``model.safetensors``. ``export.json`` beside ``model.onnx`` records the sha256 of the weights it
came from, so a stale export is detected and redone.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from doppel.core.errors import ConfigError
from doppel.core.hashing import file_sha256
from doppel.io.atomic import atomic_path, write_text_atomic
from doppel.train import checkpoint
from doppel.train.models import build_model, config_of

log = logging.getLogger(__name__)

ONNX_NAME = "model.onnx"
EXPORT_META = "export.json"


class SwapPath(nn.Module):
    """NHWC wrapper around ``model.swap`` (the graph merge runs)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        face, mask = self.model.swap(faces.permute(0, 3, 1, 2))  # type: ignore[operator]
        return face.permute(0, 2, 3, 1), mask.permute(0, 2, 3, 1)


def load_inference_model(model_dir: Path) -> nn.Module:
    """The architecture of ``config.json`` with the EMA weights, in eval mode on the CPU."""
    cfg = checkpoint.read_config(model_dir)
    model = build_model(cfg)
    checkpoint.load_weights(model_dir, model)
    return model.eval().requires_grad_(False)


def weights_sha256(model_dir: Path) -> str:
    return file_sha256(model_dir / checkpoint.WEIGHTS)


def is_current(model_dir: Path) -> bool:
    """Whether ``model.onnx`` exists and was exported from the current weights."""
    meta = model_dir / EXPORT_META
    if not (model_dir / ONNX_NAME).is_file() or not meta.is_file():
        return False
    try:
        return bool(json.loads(meta.read_text())["weights_sha256"] == weights_sha256(model_dir))
    except (ValueError, KeyError, OSError):
        return False


def export_onnx(model_dir: Path, *, opset: int = 17, check: bool = True, atol: float = 1e-4) -> Path:
    """Write ``model_dir/model.onnx`` (atomically) and, if ``check``, compare it with PyTorch.

    Raises ``ConfigError`` when ONNX Runtime's outputs differ from PyTorch's by more than ``atol``.
    """
    model = load_inference_model(model_dir)
    r = config_of(model).resolution
    wrapper = SwapPath(model).eval()
    example = torch.rand(2, r, r, 3, generator=torch.Generator().manual_seed(0))
    final = model_dir / ONNX_NAME
    with atomic_path(final) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapper, (example,), str(tmp), input_names=["faces"], output_names=["swapped", "mask"],
                          dynamic_axes={"faces": {0: "n"}, "swapped": {0: "n"}, "mask": {0: "n"}},
                          opset_version=opset, dynamo=False)
        if check:
            diff = parity(wrapper, tmp, example.numpy())
            if diff > atol:
                raise ConfigError(f"ONNX export differs from PyTorch by {diff:.2e} (> {atol:.0e})", path=final)
    meta = {"weights_sha256": weights_sha256(model_dir), "opset": opset, "resolution": r,
            "input": "faces float32 (N,R,R,3) RGB [0,1]", "outputs": ["swapped (N,R,R,3)", "mask (N,R,R,1)"]}
    write_text_atomic(model_dir / EXPORT_META, json.dumps(meta, indent=2) + "\n")
    log.info("exported %s", final)
    return final


def parity(wrapper: nn.Module, onnx_path: Path, faces: np.ndarray) -> float:
    """Largest absolute difference between PyTorch and ONNX Runtime outputs on ``faces``."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        ref = [t.numpy() for t in wrapper(torch.from_numpy(faces))]
    got = sess.run(None, {"faces": faces.astype(np.float32)})
    return float(max(np.abs(a - b).max() for a, b in zip(ref, got, strict=True)))
