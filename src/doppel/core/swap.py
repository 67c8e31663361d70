"""The contract between training and merging: a trained model seen as a face swapper.

Training (``doppel.train``) produces models that satisfy :class:`Swapper`; merging
(``doppel.merge``) consumes them without knowing the architecture or the runtime (PyTorch or
ONNX Runtime).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Swapper(Protocol):
    """Turns aligned destination faces into source-identity faces with a face mask.

    ``resolution`` and ``face_type`` say what crops it expects (see :mod:`doppel.ops.align`). A swapper
    may return faces larger than its crops (a model with a detail network): it then says so with an
    ``output_resolution`` attribute (:func:`output_resolution`); the face covers the same part of the
    frame as the crop.
    """

    resolution: int
    face_type: str

    def swap(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``faces``: float32 ``(N, R, R, 3)`` RGB in [0, 1].

        Returns the swapped faces, float32 ``(N, S, S, 3)`` RGB in [0, 1], and their masks,
        float32 ``(N, S, S, 1)`` in [0, 1] (1 = face); ``S`` is :func:`output_resolution`, ``R`` unless
        the swapper says otherwise.
        """
        ...


def output_resolution(swapper: Swapper) -> int:
    """The side of the faces ``swapper`` returns: its ``output_resolution`` when it has one, else its
    ``resolution``. Output pixel ``j`` covers crop pixels about ``(j + 0.5) * R / S - 0.5`` (pixel centres
    line up, as when resizing an image)."""
    return int(getattr(swapper, "output_resolution", swapper.resolution))
