"""Head pose (yaw, pitch, roll in degrees) from 68-point landmarks with ``cv2.solvePnP``.

A generic 3D face (six points: nose tip, chin, outer eye corners, mouth corners; millimetres,
camera axes: x to image right, y down, z away from the camera) is fitted to the landmarks with a
pinhole camera whose focal length is the frame's long side (about a 53 degree field of view).

Angles (degrees): **yaw** > 0 when the face turns towards image right, **pitch** > 0 when it
tilts down (chin towards the chest), **roll** > 0 when it rotates clockwise in the image. All
are 0 for a face looking straight into the camera. This is coarse (a few degrees): it is for
coverage statistics and sorting, not for geometry.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from doppel.ops.face import CHIN, EYE_OUTER, MOUTH_CORNERS, NOSE_TIP, one_face

_MODEL = np.array([
    [0.0, 0.0, 0.0],        # 30 nose tip
    [0.0, 63.6, 12.5],      # 8 chin
    [-43.3, -32.7, 26.0],   # 36 outer corner of the image-left eye
    [43.3, -32.7, 26.0],    # 45 outer corner of the image-right eye
    [-28.9, 28.9, 24.1],    # 48 image-left mouth corner
    [28.9, 28.9, 24.1],     # 54 image-right mouth corner
], dtype=np.float64)
_INDEX = [NOSE_TIP, CHIN, *EYE_OUTER, *MOUTH_CORNERS]


def camera_matrix(width: int, height: int) -> np.ndarray:
    f = float(max(width, height))
    return np.array([[f, 0, width / 2.0], [0, f, height / 2.0], [0, 0, 1]], dtype=np.float64)


def rotation_from_angles(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """The rotation matrix (model -> camera) for angles in degrees, in this module's convention."""
    y, p, r = (math.radians(a) for a in (yaw, pitch, roll))
    ry = np.array([[math.cos(y), 0, -math.sin(y)], [0, 1, 0], [math.sin(y), 0, math.cos(y)]])
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return rz @ rx @ ry


def angles_from_rotation(rot: np.ndarray) -> tuple[float, float, float]:
    """Inverse of :func:`rotation_from_angles` (``R = Rz(roll) Rx(pitch) Ry(yaw)``)."""
    pitch = math.asin(max(-1.0, min(1.0, rot[2, 1])))
    yaw = math.atan2(rot[2, 0], rot[2, 2])
    roll = math.atan2(-rot[0, 1], rot[1, 1])
    return math.degrees(yaw), math.degrees(pitch), math.degrees(roll)


def head_pose(landmarks: np.ndarray, frame_size: tuple[int, int]) -> tuple[float, float, float]:
    """``(yaw, pitch, roll)`` in degrees for ``(>=68, 2)`` landmarks in a ``(width, height)`` frame."""
    lm = one_face(landmarks)
    cam = camera_matrix(*frame_size)
    image_pts = lm[_INDEX]
    # Start from a frontal face at the distance its size implies, so the iteration cannot flip.
    eye_px = float(np.linalg.norm(image_pts[3] - image_pts[2]))
    depth = cam[0, 0] * 86.6 / max(eye_px, 1e-6)
    centre = (image_pts[0] - cam[:2, 2]) * depth / cam[0, 0]
    rvec0 = np.zeros((3, 1))
    tvec0 = np.array([[centre[0]], [centre[1]], [depth]])
    ok, rvec, _ = cv2.solvePnP(_MODEL, image_pts, cam, None, rvec0, tvec0, useExtrinsicGuess=True,
                               flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        return 0.0, 0.0, 0.0
    rot, _ = cv2.Rodrigues(rvec)
    return angles_from_rotation(rot)


def project_model(yaw: float, pitch: float, roll: float, frame_size: tuple[int, int], depth: float = 600.0
                  ) -> np.ndarray:
    """The six model points seen at this pose (for tests): ``(6, 2)`` image points."""
    cam = camera_matrix(*frame_size)
    pts, _ = cv2.projectPoints(_MODEL, cv2.Rodrigues(rotation_from_angles(yaw, pitch, roll))[0],
                               np.array([0.0, 0.0, depth]), cam, None)
    return pts.reshape(-1, 2)


MODEL_LANDMARKS = tuple(_INDEX)
"""Which of the 68 landmarks :func:`project_model` returns, in order."""
