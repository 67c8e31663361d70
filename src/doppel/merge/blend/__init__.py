"""Blend plug-ins, imported and registered explicitly."""

from doppel.merge.blend import alpha, poisson  # noqa: F401  (registration)
from doppel.merge.blend.base import BLENDS, Blend

__all__ = ["BLENDS", "Blend"]
