"""Inference: :class:`Segmenter` turns aligned face crops into visible-face and glasses masks, batched,
on ONNX Runtime where it is installed (about twice PyTorch's speed on two CPU cores for this small
network) or PyTorch.

Crops are cut in the segmenter's own framing (``face_type`` and ``size`` of its config, see
:func:`crop_of`); :func:`doppel.segment.crops.to_crop` moves a mask into another crop (e.g. the swap model's).
"""

from __future__ import annotations

import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import torch

from doppel.ops.align import estimate_transform
from doppel.segment import store
from doppel.segment.unet import UNet

log = logging.getLogger(__name__)

Runtime = Literal["auto", "onnx", "torch"]
BATCH = 16


@dataclass(frozen=True)
class Masks:
    """Per crop: ``face`` (visible face) and ``glasses``, float32 ``(N, S, S)`` in [0, 1]."""

    face: np.ndarray
    glasses: np.ndarray


class Segmenter:
    """A loaded segmenter. ``source`` says where it came from (a folder, or ``base``)."""

    def __init__(self, model: UNet, *, runtime: Runtime = "auto", source: str = "", threads: int | None = None) -> None:
        self.model = model.eval()
        self.config = model.config
        self.size = model.config.size
        self.face_type = model.config.face_type
        self.source = source
        self.threads = threads
        self._session: Any = None
        self.runtime: str = "torch"
        if runtime in ("auto", "onnx"):
            try:
                self._session = _onnx_session(model, threads)
                self.runtime = "onnx"
            except ImportError:
                if runtime == "onnx":
                    raise
                log.info("onnxruntime is not installed; the segmenter runs on PyTorch")

    def probabilities(self, crops: np.ndarray) -> np.ndarray:
        """``crops``: ``(N, S, S, 3)`` RGB, uint8 or float in [0, 1]. Returns float32 ``(N, 2, S, S)``."""
        x = np.asarray(crops)
        if x.ndim != 4 or x.shape[1:] != (self.size, self.size, 3):
            raise ValueError(f"expected crops of shape (N, {self.size}, {self.size}, 3), got {x.shape}")
        x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        out = []
        for start in range(0, len(x), BATCH):
            chunk = x[start:start + BATCH]
            if self._session is not None:
                logits = self._session.run(None, {"crops": chunk})[0]
            else:
                with torch.inference_mode():
                    logits = self.model(torch.from_numpy(chunk)).numpy()
            out.append(1.0 / (1.0 + np.exp(-logits)))
        if not out:
            return np.zeros((0, 2, self.size, self.size), np.float32)
        return np.concatenate(out).astype(np.float32)

    def predict(self, crops: np.ndarray) -> Masks:
        p = self.probabilities(crops)
        return Masks(p[:, 0], p[:, 1])

    def masks(self, crops: np.ndarray) -> np.ndarray:
        """The visible face of each crop: float32 ``(N, S, S)`` in [0, 1]."""
        return self.probabilities(crops)[:, 0]

    def crop_matrix(self, landmarks: np.ndarray) -> np.ndarray:
        """Frame -> segmenter-crop transform for a face with these 68-point landmarks."""
        return estimate_transform(landmarks, self.size, self.face_type)

    def crop_of(self, frame: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The segmenter's crop of the face in ``frame`` (uint8 RGB) and the frame -> crop transform."""
        m = self.crop_matrix(landmarks)
        return cv2.warpAffine(frame, m, (self.size, self.size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE), m


def _onnx_session(model: UNet, threads: int | None) -> Any:
    import onnxruntime as ort

    buf = io.BytesIO()
    example = torch.rand(2, 3, model.config.size, model.config.size, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), buf,  # type: ignore[arg-type]  # a file object is accepted
                          input_names=["crops"], output_names=["logits"],
                          dynamic_axes={"crops": {0: "n"}, "logits": {0: "n"}}, opset_version=17, dynamo=False)
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"])


def load_segmenter(folder: str | Path | None = None, *, runtime: Runtime = "auto",
                   threads: int | None = None) -> Segmenter:
    """The segmenter in ``folder`` (default: the base segmenter shipped with doppel)."""
    path = Path(folder) if folder is not None else store.base_dir()
    return Segmenter(store.load(path), runtime=runtime, source="base" if folder is None else str(path),
                     threads=threads)
