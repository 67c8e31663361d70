"""Colour-transfer plug-ins, imported and registered explicitly."""

from doppel.merge.colour import hist, idt, lct, mkl, none, rct  # noqa: F401  (registration)
from doppel.merge.colour.base import COLOUR_TRANSFERS, ColourTransfer, transfer

__all__ = ["COLOUR_TRANSFERS", "ColourTransfer", "transfer"]
