"""Poisson seamless cloning (gradient domain), feathered by the matte at its edge."""

from __future__ import annotations

import numpy as np

from doppel.merge.blend.base import BLENDS
from doppel.ops.blend import poisson_blend


@BLENDS.register("poisson")
class PoissonBlend:
    name = "poisson"

    def blend(self, plate: np.ndarray, face: np.ndarray, matte: np.ndarray) -> np.ndarray:
        return poisson_blend(plate, face, matte)
