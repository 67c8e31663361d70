"""The detector network: a small CNN on aligned face crops with a face X-ray head. Self-contained.

Input: float32 ``(N, 3, S, S)`` RGB in [0, 1] (``S`` = ``input_size``, aligned ``face_type`` crops, see
:func:`doppel.detect.faces.crop_face`). Output: :class:`Outputs` with ``logit`` ``(N,)`` (the face was
replaced: > 0) and ``boundary`` ``(N, 1, S/4, S/4)`` logits of the blend boundary ``4 M (1 - M)``.

On disk (a folder, like a diffusers model): ``config.json`` (:class:`DetectorConfig`, the constructor's
arguments), ``detector.safetensors`` (the weights) and ``calibration.json`` (the clip threshold, see
:mod:`doppel.detect.calibrate`). No pickle anywhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from safetensors.torch import load_file, save_file
from torch import nn

from doppel.core.config import Settings
from doppel.core.errors import InputError
from doppel.io.atomic import atomic_path, write_text_atomic

FORMAT_VERSION = 1
CONFIG = "config.json"
WEIGHTS = "detector.safetensors"
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
"""The detector doppel ships."""


class DetectorConfig(Settings):
    """The network's shape and the crops it expects."""

    format_version: int = FORMAT_VERSION
    input_size: int = Field(128, ge=64, le=512)
    face_type: Literal["full", "whole", "head"] = "whole"
    widths: tuple[int, ...] = (24, 32, 64, 96, 128)
    """Channels of the stem and of each stage (each stage but the last halves the resolution)."""
    head: Literal["global", "patch"] = "global"
    """``global``: one classifier on the last stage's pooled features (it sees the whole face); ``patch``: a
    score per location of the third stage (each sees about a third of the crop, too little to know who it
    is), the image's logit the mean of its ``patch_top`` highest."""
    patch_top: float = Field(0.25, gt=0, le=1)
    patch_stage: int = Field(3, ge=2, le=3)
    """The stage whose locations are scored with ``head="patch"``: 3 (S/16, each location sees 87 input
    pixels) or 2 (S/8, 39 pixels)."""


@dataclass
class Outputs:
    logit: torch.Tensor      # (N,)
    boundary: torch.Tensor   # (N, 1, S/4, S/4) logits
    patches: torch.Tensor | None = None   # (N, 1, h, w) per-location logits (``head="patch"``)


class _Block(nn.Module):
    """Two 3x3 convolutions with batch norm, a residual path, optional stride 2."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
                     if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.skip(x))


def top_mean(logits: torch.Tensor, share: float) -> torch.Tensor:
    """``(N, 1, H, W)`` patch logits -> ``(N,)``: the mean of each image's ``share`` highest."""
    flat = logits.flatten(1)
    k = max(1, round(share * flat.shape[1]))
    return flat.topk(k, dim=1).values.mean(dim=1)


class FaceForensicsNet(nn.Module):
    """Stem (stride 2), stages at S/4, S/8, S/16 and S/16; a classifier on pooled features (or on each patch
    of the S/16 stage, ``head="patch"``) and a boundary head on the S/4 stage, where a blend's edge is still
    a few pixels wide."""

    def __init__(self, config: DetectorConfig) -> None:
        super().__init__()
        w = config.widths
        if len(w) != 5:
            raise ValueError(f"widths must list 5 channel counts (stem and 4 stages), got {w}")
        self.config = config
        self.stem = nn.Sequential(nn.Conv2d(3, w[0], 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(w[0]),
                                  nn.ReLU())
        self.stage1 = _Block(w[0], w[1], 2)
        self.stage2 = _Block(w[1], w[2], 2)
        patch = config.head == "patch"
        self.stage3 = _Block(w[2], w[3], 2) if not patch or config.patch_stage == 3 else nn.Identity()
        self.stage4 = _Block(w[3], w[4], 1) if not patch else nn.Identity()
        self.patches = nn.Conv2d(w[config.patch_stage], 1, 1) if patch else None
        self.boundary = nn.Sequential(nn.Conv2d(w[1], 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 1, 1))
        self.classifier = (nn.Sequential(nn.Dropout(0.2), nn.Linear(2 * w[4], 1)) if config.head == "global"
                           else nn.Identity())

    def forward(self, x: torch.Tensor) -> Outputs:
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] != self.config.input_size or x.shape[3] != x.shape[2]:
            raise ValueError(f"expected (N, 3, {self.config.input_size}, {self.config.input_size}) crops, "
                             f"got {tuple(x.shape)}")
        f1 = self.stage1(self.stem(x - 0.5))
        f = self.stage3(self.stage2(f1))
        if self.patches is not None:
            grid = self.patches(f)
            return Outputs(top_mean(grid, self.config.patch_top), self.boundary(f1), grid)
        f = self.stage4(f)
        pooled = torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3))], dim=1)
        return Outputs(self.classifier(pooled).squeeze(1), self.boundary(f1))


def save(model: FaceForensicsNet, folder: Path) -> None:
    """Write ``config.json`` and ``detector.safetensors`` into ``folder`` (atomically, each)."""
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / CONFIG, json.dumps(model.config.model_dump(), indent=2, sort_keys=True) + "\n")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(folder / WEIGHTS) as tmp:
        save_file(state, str(tmp), metadata={"format": "doppel-detector", "version": str(FORMAT_VERSION)})


def read_config(folder: Path) -> DetectorConfig:
    path = Path(folder) / CONFIG
    try:
        return DetectorConfig.model_validate(json.loads(path.read_text()))
    except FileNotFoundError:
        raise InputError("no detector config here; give a detector folder (config.json, detector.safetensors)",
                         path=path) from None
    except (ValueError, OSError) as exc:
        raise InputError(f"not a readable detector config ({str(exc).splitlines()[0]})", path=path) from None


def load(folder: Path | None = None) -> FaceForensicsNet:
    """The detector in ``folder`` (default: the one doppel ships), in eval mode on the CPU."""
    folder = Path(folder) if folder is not None else WEIGHTS_DIR
    model = FaceForensicsNet(read_config(folder))
    path = folder / WEIGHTS
    try:
        state = load_file(str(path))
    except FileNotFoundError:
        raise InputError("no detector weights here; train one with `doppel detect train`", path=path) from None
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise InputError(f"not readable detector weights ({str(exc).splitlines()[0]})", path=path) from None
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise InputError(f"weights do not match config.json ({str(exc).splitlines()[0]})", path=path) from None
    return model.eval()
