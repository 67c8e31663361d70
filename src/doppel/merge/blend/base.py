"""The blend plug-in contract and its registry.

A blend puts the (already unaligned) swapped face into a region of the frame through a matte.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from doppel.core.registry import Registry


class Blend(Protocol):
    name: str

    def blend(self, plate: np.ndarray, face: np.ndarray, matte: np.ndarray) -> np.ndarray:
        """``plate`` and ``face``: uint8 ``(H, W, 3)`` RGB; ``matte``: float32 ``(H, W)`` in [0, 1].

        Returns uint8 ``(H, W, 3)``, equal to ``plate`` wherever ``matte`` is 0.
        """
        ...


BLENDS: Registry[Blend] = Registry("blend")
