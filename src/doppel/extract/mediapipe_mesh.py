"""MediaPipe's face mesh (legacy ``solutions.face_mesh`` of ``mediapipe==0.10.21``, the optional
``mediapipe`` extra) as a landmarker: 478 points with dense eye, iris and lip contours.

Returned landmarks are ``68 + 478`` points: first the 68 iBUG points (each the mesh vertex that
best matches dlib's point, :data:`IBUG68_FROM_MESH`, derived by ``bench/mediapipe_68.py``), then
the whole mesh in MediaPipe's vertex order. The mesh runs on a square crop around the box (its
own face detector confirms the face there); when it finds none, :meth:`landmarks` raises
``LookupError``. The models ship inside the wheel; nothing is downloaded.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from doppel.core.errors import ConfigError
from doppel.extract.base import check_image

MESH_POINTS = 478
_CROP = 256  # the crop is resized to this square; the mesh model itself works at 192 px

# dlib iBUG-68 index -> mesh vertex, derived by bench/mediapipe_68.py on the six shared clips (139 frames,
# every 10th): median distance to dlib's point 0.045 inter-ocular distances on average; eyes and lips
# ~0.02, the jaw line up to 0.13 (the mesh's face oval and dlib's jaw are drawn differently).
IBUG68_FROM_MESH: tuple[int, ...] = (
    127, 234, 177, 215, 172, 136, 149, 176, 152, 377, 378, 365, 397, 435, 401, 447, 356,  # jaw 0-16
    70, 63, 105, 66, 107, 285, 296, 334, 293, 300,  # brows 17-26
    168, 197, 195, 4, 240, 97, 2, 326, 305,  # nose 27-35
    246, 160, 158, 155, 153, 144, 362, 385, 386, 466, 373, 380,  # eyes 36-47
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 91,  # outer lips 48-59
    78, 82, 13, 312, 325, 317, 14, 87,  # inner lips 60-67
)


def mesh_points(mesh: Any, rgb: np.ndarray) -> np.ndarray | None:
    """``(478, 2)`` float32 mesh vertices in ``rgb``'s pixels for its most prominent face, or None."""
    result = mesh.process(np.ascontiguousarray(rgb))
    if not result.multi_face_landmarks:
        return None
    h, w = rgb.shape[:2]
    lms = result.multi_face_landmarks[0].landmark
    return np.array([(p.x * w, p.y * h) for p in lms], dtype=np.float32)


class MediaPipeMeshLandmarker:
    name = "mediapipe-mesh"
    points = 68 + MESH_POINTS

    def __init__(self, *, margin: float = 1.8, min_confidence: float = 0.3) -> None:
        try:
            import mediapipe as mp
        except ImportError:
            raise ConfigError("the mediapipe-mesh landmarker needs the `mediapipe` extra "
                              "(pip install 'doppel[mediapipe]')") from None
        if len(IBUG68_FROM_MESH) != 68:
            raise ConfigError("mediapipe-mesh: the iBUG-68 correspondence table is missing")
        self.margin = margin
        self._mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1,
                                                     refine_landmarks=True, min_detection_confidence=min_confidence)
        self._index = np.asarray(IBUG68_FROM_MESH)

    def landmarks(self, image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        check_image(image)
        x0, y0, x1, y1 = box
        if x1 <= x0 or y1 <= y0:
            raise ValueError(f"empty face box {box}")
        side = max(x1 - x0, y1 - y0) * self.margin
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        scale = _CROP / side
        # Frame -> crop: a scaled, shifted square around the box (outside the frame is black).
        m = np.array([[scale, 0, _CROP / 2 - cx * scale], [0, scale, _CROP / 2 - cy * scale]])
        crop = cv2.warpAffine(image, m, (_CROP, _CROP), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        if crop.ndim == 2:
            crop = cv2.cvtColor(crop, cv2.COLOR_GRAY2RGB)
        pts = mesh_points(self._mesh, crop)
        if pts is None:
            raise LookupError(f"no face mesh found in box {tuple(round(v) for v in box)}")
        pts = (pts - m[:, 2]) / scale
        return np.concatenate([pts[self._index], pts]).astype(np.float32)
