import cv2
import numpy as np
import pytest

from doppel.ops.align import (
    FACE_TYPES,
    estimate_transform,
    five_points,
    invert,
    template,
    transform_points,
    transform_scale,
    umeyama,
    warp_to_face,
    warp_to_frame,
)


def _similarity(angle_deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    m = cv2.getRotationMatrix2D((0, 0), angle_deg, scale)
    m[:, 2] = (tx, ty)
    return m


def test_umeyama_recovers_a_known_similarity() -> None:
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 100, (12, 2))
    m = _similarity(23.0, 1.7, 12.5, -4.0)
    assert np.allclose(umeyama(src, transform_points(src, m)), m, atol=1e-9)


def _landmarks_from_template(face_type: str, size: int, m: np.ndarray) -> np.ndarray:
    """68 points whose five derived points are the template, moved by m^-1 into a frame."""
    lm = np.zeros((68, 2))
    t = template(face_type, size)  # type: ignore[arg-type]
    lm[36:42] = t[0]
    lm[42:48] = t[1]
    lm[30] = t[2]
    lm[48] = t[3]
    lm[54] = t[4]
    return transform_points(lm, invert(m))


@pytest.mark.parametrize("face_type", FACE_TYPES)
def test_estimate_transform_inverts_the_pose(face_type: str) -> None:
    m = _similarity(-15.0, 0.8, 30.0, 40.0)
    lm = _landmarks_from_template(face_type, 256, m)
    assert np.allclose(estimate_transform(lm, 256, face_type), m, atol=1e-6)  # type: ignore[arg-type]
    assert transform_scale(m) == pytest.approx(0.8)


def test_wider_face_types_show_a_smaller_face() -> None:
    spans = [np.ptp(template(ft, 256)[:, 0]) for ft in FACE_TYPES]
    assert spans[0] > spans[1] > spans[2]


def test_warp_roundtrip_is_subpixel() -> None:
    rng = np.random.default_rng(0)
    frame = cv2.GaussianBlur(rng.uniform(0, 255, (200, 240, 3)).astype(np.float32), (0, 0), 4)
    m = _similarity(10.0, 1.3, -20.0, 5.0)
    face = warp_to_face(frame, m, 256)
    back = warp_to_frame(face, m, frame.shape)
    inner = (slice(60, 140), slice(60, 180))
    assert np.abs(back[inner] - frame[inner]).mean() < 0.5


def test_five_points_checks_shape() -> None:
    with pytest.raises(ValueError, match="shape"):
        five_points(np.zeros((5, 2)))
