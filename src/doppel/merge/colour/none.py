"""No colour transfer: the swapped face keeps the model's colours."""

from __future__ import annotations

import numpy as np

from doppel.merge.colour.base import COLOUR_TRANSFERS


@COLOUR_TRANSFERS.register("none")
class NoTransfer:
    name = "none"

    def fit(self, source: np.ndarray, target: np.ndarray, source_mask: np.ndarray | None = None,
            target_mask: np.ndarray | None = None) -> np.ndarray:
        return np.zeros(0)

    def apply(self, image: np.ndarray, params: np.ndarray) -> np.ndarray:
        return np.clip(image.astype(np.float32), 0.0, 1.0)
