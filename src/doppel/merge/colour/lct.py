"""LCT: linear colour transfer matching the RGB mean and covariance."""

from __future__ import annotations

import numpy as np

from doppel.merge.colour.base import COLOUR_TRANSFERS
from doppel.ops import colour as ops


@COLOUR_TRANSFERS.register("lct")
class LinearTransfer:
    name = "lct"

    def fit(self, source: np.ndarray, target: np.ndarray, source_mask: np.ndarray | None = None,
            target_mask: np.ndarray | None = None) -> np.ndarray:
        return ops.moments_fit(source, target, source_mask, target_mask)

    def apply(self, image: np.ndarray, params: np.ndarray) -> np.ndarray:
        return ops.lct_apply(image, params)
