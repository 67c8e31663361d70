"""A face model followed by its detail network, seen as one :class:`~doppel.core.swap.Swapper`.

Takes crops at the face model's ``resolution`` and returns faces (and masks) at
``output_resolution`` = ``scale`` x that: merge cuts the crop at the input size and composites
the larger face (see :func:`doppel.merge.stages.output_resolution`).
"""

from __future__ import annotations

import numpy as np
import torch

from doppel.core.swap import Swapper
from doppel.train.detail import upscale_mask
from doppel.train.models.detail import DetailNet


class DetailSwapper:
    """``base`` (any Swapper) then ``net`` on its faces; the mask is upsampled bilinearly.

    The network runs on the base's ``device`` when it has one (a CUDA face model keeps its detail
    network on the GPU too), else on the CPU.
    """

    def __init__(self, base: Swapper, net: DetailNet, batch: int = 8) -> None:
        self.device = torch.device(getattr(base, "device", "cpu"))
        self.base, self.net, self.batch = base, net.eval().to(self.device), batch
        self.resolution: int = base.resolution
        self.face_type: str = base.face_type
        self.output_resolution: int = base.resolution * net.config.scale

    @torch.inference_mode()
    def swap(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``faces`` float32 ``(N, R, R, 3)`` in [0, 1] -> faces ``(N, S, S, 3)`` and masks ``(N, S, S, 1)``,
        ``S = output_resolution``."""
        face, mask = self.base.swap(faces)
        s = self.output_resolution
        if len(face) == 0:
            return np.zeros((0, s, s, 3), np.float32), np.zeros((0, s, s, 1), np.float32)
        outs = []
        for i in range(0, len(face), self.batch):
            x = torch.from_numpy(np.ascontiguousarray(face[i:i + self.batch], np.float32)).to(self.device)
            outs.append(self.net(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1).float().cpu().numpy())
        m = torch.from_numpy(np.ascontiguousarray(mask, np.float32)).permute(0, 3, 1, 2)
        masks = upscale_mask(m, self.net.config.scale).clamp(0, 1).permute(0, 2, 3, 1).numpy()
        return np.concatenate(outs), np.ascontiguousarray(masks)
