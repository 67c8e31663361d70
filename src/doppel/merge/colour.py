"""Colour transfer for the merge: the plug-in contract and the table of transfers, registered by name.

A transfer makes the swapped face (``source``) take the colours of the destination face it
replaces (``target``). It is split into :meth:`ColourTransfer.fit` (statistics as a flat float64
vector, which the merge smooths over time) and :meth:`ColourTransfer.apply`. The maths is
:mod:`doppel.ops.colour`; :data:`ColourMode` is the one list of names, which the settings use too.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol, get_args

import numpy as np

from doppel.core.registry import Registry
from doppel.ops import colour as ops

ColourMode = Literal["none", "rct", "lct", "mkl", "idt", "hist"]

FitFn = Callable[[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None], np.ndarray]
ApplyFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


class ColourTransfer(Protocol):
    @property
    def name(self) -> str: ...

    def fit(self, source: np.ndarray, target: np.ndarray, source_mask: np.ndarray | None = None,
            target_mask: np.ndarray | None = None) -> np.ndarray:
        """Statistics of ``source`` and ``target`` (float32 ``(H, W, 3)`` RGB in [0, 1]) over their masks
        (``(H, W)`` in [0, 1]; > 0.5 counts). Returns a 1-D float64 vector of fixed length."""
        ...

    def apply(self, image: np.ndarray, params: np.ndarray) -> np.ndarray:
        """Map ``image`` (float32 ``(H, W, 3)`` RGB in [0, 1]) with fitted ``params``; same shape, in [0, 1]."""
        ...


@dataclass(frozen=True)
class FunctionTransfer:
    """A :class:`ColourTransfer` made of a fit and an apply function."""

    name: str
    fit_fn: FitFn
    apply_fn: ApplyFn

    def fit(self, source: np.ndarray, target: np.ndarray, source_mask: np.ndarray | None = None,
            target_mask: np.ndarray | None = None) -> np.ndarray:
        return self.fit_fn(source, target, source_mask, target_mask)

    def apply(self, image: np.ndarray, params: np.ndarray) -> np.ndarray:
        return self.apply_fn(image, params)


def _keep_fit(source: np.ndarray, target: np.ndarray, source_mask: np.ndarray | None = None,
              target_mask: np.ndarray | None = None) -> np.ndarray:
    return np.zeros(0)


def _keep_apply(image: np.ndarray, params: np.ndarray) -> np.ndarray:
    return np.clip(image.astype(np.float32), 0.0, 1.0)


_TABLE: dict[ColourMode, tuple[FitFn, ApplyFn]] = {
    "none": (_keep_fit, _keep_apply),  # the swapped face keeps the model's colours
    "rct": (ops.rct_fit, ops.rct_apply),  # Reinhard: mean and standard deviation per channel in Lab
    "lct": (ops.moments_fit, ops.lct_apply),  # linear: the RGB mean and covariance
    "mkl": (ops.moments_fit, ops.mkl_apply),  # Monge-Kantorovich: the least-displacement linear map
    "idt": (ops.idt_fit, ops.idt_apply),  # iterative distribution transfer along rotated axes
    "hist": (ops.hist_fit, ops.hist_apply),  # histogram matching per RGB channel
}
if tuple(_TABLE) != get_args(ColourMode):
    raise RuntimeError(f"colour transfer table {tuple(_TABLE)} differs from ColourMode {get_args(ColourMode)}")

COLOUR_TRANSFERS: Registry[ColourTransfer] = Registry("colour transfer")
for _name, (_fit, _apply) in _TABLE.items():
    COLOUR_TRANSFERS.register(_name)(functools.partial(FunctionTransfer, _name, _fit, _apply))


def transfer(name: str, source: np.ndarray, target: np.ndarray, source_mask: np.ndarray | None = None,
             target_mask: np.ndarray | None = None) -> np.ndarray:
    """Fit and apply in one go (no temporal smoothing)."""
    plugin = COLOUR_TRANSFERS.create(name)
    return plugin.apply(source, plugin.fit(source, target, source_mask, target_mask))
