"""dlib's HOG + linear SVM frontal face detector (five sliding-window filters: frontal, left,
right, and frontal rotated each way). Fast on the CPU; finds faces of at least ~80 px."""

from __future__ import annotations

import dlib
import numpy as np

from doppel.extract.base import Detection, check_image


class HogDetector:
    name = "dlib-hog"
    min_face = 80

    def __init__(self, *, upsample: int = 0) -> None:
        if upsample < 0:
            raise ValueError(f"upsample must be >= 0, got {upsample}")
        self.upsample = upsample
        self._detector = dlib.get_frontal_face_detector()
        self.min_face = max(20, 80 >> upsample)

    def detect(self, image: np.ndarray, *, threshold: float = 0.0) -> list[Detection]:
        check_image(image)
        rects, scores, _ = self._detector.run(np.ascontiguousarray(image), self.upsample, threshold)
        found = [Detection((float(r.left()), float(r.top()), float(r.right() + 1), float(r.bottom() + 1)), float(s))
                 for r, s in zip(rects, scores, strict=True)]
        return sorted(found, key=lambda d: -d.score)
