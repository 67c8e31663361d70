"""A compact U-Net face segmenter: an aligned face crop in, visible-face and glasses logits out.

Self-contained (PyTorch only). Input: float32 ``(N, 3, S, S)`` RGB in [0, 1], ``S`` =
``config.size`` (a multiple of 16). Output: float32 logits ``(N, 2, S, S)``; channel 0 is the
visible face (skin, eyes, brows, nose, mouth: not hair, hands, objects or glasses), channel 1 the
glasses (frames, and lenses dark enough to hide the eyes) in front of the face.

Layout: a stride-2 stem and three stride-2 stages (``S/2`` .. ``S/16``), a dilated context block at
the bottom, three decoder stages with skip connections back up to ``S/2``, and a full-resolution
head that sees the input pixels again so occluder edges come out sharp. Constructor arguments are
:class:`UNetConfig`, saved as JSON beside the safetensors weights (see :mod:`doppel.segment.store`).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import nn

from doppel.core.config import Settings

CHANNELS = ("face", "glasses")
FORMAT_VERSION = 1


class UNetConfig(Settings):
    """Architecture of the segmenter and the crop it reads (face type and size of the aligned crop)."""

    FLAGS: ClassVar[dict[str, str]] = {}

    format_version: int = FORMAT_VERSION
    arch: Literal["unet-s"] = "unet-s"
    size: int = Field(128, ge=32, le=512)
    face_type: Literal["full", "whole", "head"] = "whole"
    widths: tuple[int, int, int, int] = (16, 32, 48, 64)
    head: int = Field(8, ge=4, le=64)

    @field_validator("size")
    @classmethod
    def _size(cls, v: int) -> int:
        if v % 16:
            raise ValueError(f"size {v} must be a multiple of 16")
        return v


def _conv(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class _Down(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(_conv(cin, cout, 2), _conv(cout, cout))


class _Up(nn.Module):
    def __init__(self, cin: int, skip: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(_conv(cin + skip, cout), _conv(cout, cout))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.conv(torch.cat([x, skip], 1))


class UNet(nn.Module):
    """See the module docstring. ``forward`` returns logits; :meth:`probabilities` their sigmoid."""

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        c0, c1, c2, c3 = config.widths
        self.stem = _Down(3, c0)  # S/2
        self.down1 = _Down(c0, c1)  # S/4
        self.down2 = _Down(c1, c2)  # S/8
        self.down3 = _Down(c2, c3)  # S/16
        self.context = nn.Sequential(_conv(c3, c3, dilation=2), _conv(c3, c3, dilation=4))
        self.up2 = _Up(c3, c2, c2)
        self.up1 = _Up(c2, c1, c1)
        self.up0 = _Up(c1, c0, c0)
        self.head = nn.Sequential(_conv(c0 + 3, config.head), nn.Conv2d(config.head, len(CHANNELS), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] != x.shape[3] or x.shape[2] % 16:
            raise ValueError(f"expected float (N, 3, S, S) RGB with S a multiple of 16, got {tuple(x.shape)}")
        inp = x * 2.0 - 1.0
        e0 = self.stem(inp)
        e1 = self.down1(e0)
        e2 = self.down2(e1)
        e3 = self.context(self.down3(e2))
        d = self.up0(self.up1(self.up2(e3, e2), e1), e0)
        d = F.interpolate(d, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.head(torch.cat([d, inp], 1))

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.forward(x))
