"""Feathered alpha blending through the matte."""

from __future__ import annotations

import numpy as np

from doppel.merge.blend.base import BLENDS
from doppel.ops.blend import alpha_blend


@BLENDS.register("alpha")
class AlphaBlend:
    name = "alpha"

    def blend(self, plate: np.ndarray, face: np.ndarray, matte: np.ndarray) -> np.ndarray:
        return alpha_blend(plate, face, matte)
