"""RCT: Reinhard colour transfer (mean and standard deviation per channel in Lab)."""

from __future__ import annotations

import numpy as np

from doppel.merge.colour.base import COLOUR_TRANSFERS
from doppel.ops import colour as ops


@COLOUR_TRANSFERS.register("rct")
class ReinhardTransfer:
    name = "rct"

    def fit(self, source: np.ndarray, target: np.ndarray, source_mask: np.ndarray | None = None,
            target_mask: np.ndarray | None = None) -> np.ndarray:
        return ops.rct_fit(source, target, source_mask, target_mask)

    def apply(self, image: np.ndarray, params: np.ndarray) -> np.ndarray:
        return ops.rct_apply(image, params)
