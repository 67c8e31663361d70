"""Blending for the merge: the plug-in contract and the table of blends, registered by name.

A blend puts the (already unaligned) swapped face into a region of the frame through a matte. The
maths is :mod:`doppel.ops.blend`; :data:`BlendMode` is the one list of names, which the settings use too.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol, get_args

import numpy as np

from doppel.core.registry import Registry
from doppel.ops.blend import alpha_blend, poisson_blend

BlendMode = Literal["alpha", "poisson"]

BlendFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


class Blend(Protocol):
    @property
    def name(self) -> str: ...

    def blend(self, plate: np.ndarray, face: np.ndarray, matte: np.ndarray) -> np.ndarray:
        """``plate`` and ``face``: uint8 ``(H, W, 3)`` RGB; ``matte``: float32 ``(H, W)`` in [0, 1].

        Returns uint8 ``(H, W, 3)``, equal to ``plate`` wherever ``matte`` is 0.
        """
        ...


@dataclass(frozen=True)
class FunctionBlend:
    """A :class:`Blend` made of one function."""

    name: str
    fn: BlendFn

    def blend(self, plate: np.ndarray, face: np.ndarray, matte: np.ndarray) -> np.ndarray:
        return self.fn(plate, face, matte)


_TABLE: dict[BlendMode, BlendFn] = {
    "alpha": alpha_blend,  # feathered alpha blending through the matte
    "poisson": poisson_blend,  # Poisson seamless cloning, feathered by the matte at its edge
}
if tuple(_TABLE) != get_args(BlendMode):
    raise RuntimeError(f"blend table {tuple(_TABLE)} differs from BlendMode {get_args(BlendMode)}")

BLENDS: Registry[Blend] = Registry("blend")
for _name, _fn in _TABLE.items():
    BLENDS.register(_name)(functools.partial(FunctionBlend, _name, _fn))
