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

    ``resolution`` and ``face_type`` say what crops it expects (see :mod:`doppel.ops.align`).
    """

    resolution: int
    face_type: str

    def swap(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``faces``: float32 ``(N, R, R, 3)`` RGB in [0, 1].

        Returns the swapped faces, float32 ``(N, R, R, 3)`` RGB in [0, 1], and their masks,
        float32 ``(N, R, R, 1)`` in [0, 1] (1 = face).
        """
        ...
