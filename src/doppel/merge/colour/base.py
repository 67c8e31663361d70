"""The colour-transfer plug-in contract and its registry.

A transfer makes the swapped face (``source``) take the colours of the destination face it
replaces (``target``). It is split into :meth:`fit` (statistics as a flat float64 vector, which
the merge smooths over time) and :meth:`apply`.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from doppel.core.registry import Registry


class ColourTransfer(Protocol):
    name: str

    def fit(self, source: np.ndarray, target: np.ndarray, source_mask: np.ndarray | None = None,
            target_mask: np.ndarray | None = None) -> np.ndarray:
        """Statistics of ``source`` and ``target`` (float32 ``(H, W, 3)`` RGB in [0, 1]) over their masks
        (``(H, W)`` in [0, 1]; > 0.5 counts). Returns a 1-D float64 vector of fixed length."""
        ...

    def apply(self, image: np.ndarray, params: np.ndarray) -> np.ndarray:
        """Map ``image`` (float32 ``(H, W, 3)`` RGB in [0, 1]) with fitted ``params``; same shape, in [0, 1]."""
        ...


COLOUR_TRANSFERS: Registry[ColourTransfer] = Registry("colour transfer")


def transfer(name: str, source: np.ndarray, target: np.ndarray, source_mask: np.ndarray | None = None,
             target_mask: np.ndarray | None = None) -> np.ndarray:
    """Fit and apply in one go (no temporal smoothing)."""
    plugin = COLOUR_TRANSFERS.create(name)
    return plugin.apply(source, plugin.fit(source, target, source_mask, target_mask))
