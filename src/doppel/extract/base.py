"""The narrow contracts every face backend fulfils, and the registries that name them.

Three plugin kinds, each one small module per implementation:

- :class:`Detector`: finds face boxes in an image.
- :class:`Landmarker`: places landmarks (iBUG 68-point order first) inside a face box.
- :class:`Embedder`: turns a face (image + landmarks) into an identity vector.

Conventions at these boundaries: images are ``uint8`` RGB ``(H, W, 3)`` or grayscale
``(H, W)``; boxes are ``float`` ``(x0, y0, x1, y1)`` in the pixels of the image given; landmarks
are ``float32`` ``(N, 2)`` in ``(x, y)`` pixels of the image given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from doppel.core.registry import Registry


@dataclass(frozen=True)
class Detection:
    """A face box ``(x0, y0, x1, y1)`` in image pixels with the detector's confidence score.

    Scores are the backend's own (dlib HOG: SVM margin, ~0 at its default threshold; MMOD: the
    CNN's confidence). Compare them only within one backend.
    """

    box: tuple[float, float, float, float]
    score: float

    def scaled(self, factor: float, dx: float = 0.0, dy: float = 0.0) -> Detection:
        """The same box in another image: multiply by ``factor``, then shift by ``(dx, dy)``."""
        x0, y0, x1, y1 = self.box
        return Detection((x0 * factor + dx, y0 * factor + dy, x1 * factor + dx, y1 * factor + dy), self.score)


class Detector(Protocol):
    """Finds faces. ``min_face`` is the smallest face side (pixels of the given image) it finds."""

    name: str
    min_face: int

    def detect(self, image: np.ndarray, *, threshold: float = 0.0) -> list[Detection]:
        """Faces in ``image`` (uint8 RGB ``(H, W, 3)`` or gray ``(H, W)``), best first.

        ``threshold`` shifts the backend's decision threshold (lower finds more, less surely).
        """
        ...


class Landmarker(Protocol):
    """Places ``points`` landmarks (the first 68 in iBUG order) inside a face box."""

    name: str
    points: int

    def landmarks(self, image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        """``float32`` ``(points, 2)`` landmarks in ``image`` pixels for the face in ``box``.

        Raises ``LookupError`` if the backend can tell that there is no face in the box.
        """
        ...


class Embedder(Protocol):
    """Maps a face to an identity vector; ``match_distance`` is the Euclidean distance under
    which two vectors are the same person."""

    name: str
    dim: int
    match_distance: float

    def embed(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """``float32`` ``(dim,)`` identity vector of the face with these 68-point ``landmarks``
        in ``image`` (uint8 RGB ``(H, W, 3)``)."""
        ...


DETECTORS: Registry[Detector] = Registry("face detector")
LANDMARKERS: Registry[Landmarker] = Registry("landmarker")
EMBEDDERS: Registry[Embedder] = Registry("identity embedder")


def check_image(image: np.ndarray, *, gray_ok: bool = True) -> None:
    """Raise ``ValueError`` naming the shape and dtype unless ``image`` is uint8 RGB (or gray)."""
    ok_rgb = image.ndim == 3 and image.shape[2] == 3
    ok_gray = gray_ok and image.ndim == 2
    if image.dtype != np.uint8 or not (ok_rgb or ok_gray):
        want = "uint8 (H, W, 3) RGB or (H, W) gray" if gray_ok else "uint8 (H, W, 3) RGB"
        raise ValueError(f"expected a {want} image, got shape {image.shape} dtype {image.dtype}")


def box_iou(a: tuple[float, float, float, float] | np.ndarray, b: tuple[float, float, float, float] | np.ndarray
            ) -> float:
    """Intersection over union of two ``(x0, y0, x1, y1)`` boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0
