"""IDT: iterative distribution transfer (1-D matching along fixed rotated axes)."""

from __future__ import annotations

import numpy as np

from doppel.merge.colour.base import COLOUR_TRANSFERS
from doppel.ops import colour as ops


@COLOUR_TRANSFERS.register("idt")
class IterativeDistributionTransfer:
    name = "idt"

    def fit(self, source: np.ndarray, target: np.ndarray, source_mask: np.ndarray | None = None,
            target_mask: np.ndarray | None = None) -> np.ndarray:
        return ops.idt_fit(source, target, source_mask, target_mask)

    def apply(self, image: np.ndarray, params: np.ndarray) -> np.ndarray:
        return ops.idt_apply(image, params)
