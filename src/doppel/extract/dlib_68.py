"""dlib's 68-point shape predictor (an ensemble of regression trees, Kazemi & Sullivan 2014),
trained on iBUG 300-W with boxes from dlib's HOG detector. About 1 ms per face."""

from __future__ import annotations

import dlib
import numpy as np

from doppel.extract.base import check_image
from doppel.extract.models import DLIB_68, dlib_model


class Dlib68Landmarker:
    name = "dlib-68"
    points = 68

    def __init__(self) -> None:
        self._predictor = dlib.shape_predictor(str(dlib_model(DLIB_68)))

    def landmarks(self, image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        check_image(image)
        x0, y0, x1, y1 = (round(v) for v in box)
        if x1 <= x0 or y1 <= y0:
            raise ValueError(f"empty face box {box}")
        shape = self._predictor(np.ascontiguousarray(image), dlib.rectangle(x0, y0, x1 - 1, y1 - 1))
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
