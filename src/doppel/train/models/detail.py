"""A per-identity detail network: a face model's low-resolution output -> the same face ``scale`` x larger.

The face model works at a small crop (96 px for the ``cpu`` preset), while faces in a plate are
300-400 px: drawn at that size its output has a third of the plate's gradient energy. This network
is trained on the source person's own faces (see :mod:`doppel.train.detail`) to restore what that
person's eyes, lids, brows, lips and skin look like at full size, from the model's output.

Layout: features at the input resolution (cheap), a sub-pixel convolution (depth-to-space) up to
``scale`` x, a short refinement at the output resolution, added as a residual to the bicubic
upsampling of the input (so an untrained network already returns the plain upsampled face).
Tensors are float32 NCHW RGB in [0, 1]; ``(N, 3, r, r)`` -> ``(N, 3, scale r, scale r)``.
Self-contained, like the other architectures.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from doppel.train.config import DetailConfig


class _Res(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.leaky_relu(self.conv1(x), 0.1))


class DetailNet(nn.Module):
    """See the module docstring. ``forward(x)`` takes faces in [0, 1] and returns faces in [0, 1]."""

    def __init__(self, config: DetailConfig) -> None:
        super().__init__()
        self.config = config
        c, h, s = config.channels, config.hr_channels, config.scale
        self.head = nn.Conv2d(3, c, 3, padding=1)
        self.trunk = nn.Sequential(*[_Res(c) for _ in range(config.blocks)])
        self.up = nn.Conv2d(c, h * s * s, 3, padding=1)
        self.refine = nn.Conv2d(h, h, 3, padding=1)
        self.out = nn.Conv2d(h, 3, 3, padding=1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=0.1)
                nn.init.zeros_(m.bias)  # type: ignore[arg-type]
        nn.init.zeros_(self.out.weight)  # start as plain bicubic upsampling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected faces (N, 3, r, r), got {tuple(x.shape)}")
        s = self.config.scale
        base = F.interpolate(x, scale_factor=s, mode="bicubic", align_corners=False)
        f = F.leaky_relu(self.head(x * 2 - 1), 0.1)
        f = self.trunk(f)
        f = F.leaky_relu(F.pixel_shuffle(self.up(f), s), 0.1)
        f = F.leaky_relu(self.refine(f), 0.1)
        return (base + self.out(f)).clamp(0.0, 1.0)
