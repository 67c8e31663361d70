"""One contract test per plugin kind, run over every registered plugin."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from doppel.demo.media import portrait
from doppel.extract import backends
from doppel.extract.base import DETECTORS, EMBEDDERS, LANDMARKERS, box_iou
from doppel.extract.models import DLIB_68, dlib_model

ASTRONAUT_FACE = (179.0, 83.0, 267.0, 171.0)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return portrait("astronaut")


def _noise() -> np.ndarray:
    rng = np.random.default_rng(0)
    return cv2.GaussianBlur(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), (0, 0), 3)


def test_every_kind_has_plugins() -> None:
    assert "dlib-hog" in DETECTORS and "dlib-mmod" in DETECTORS
    assert "dlib-68" in LANDMARKERS  # and "mediapipe-mesh" where the mediapipe extra is installed
    assert EMBEDDERS.names() == ["dlib-resnet"]
    assert dlib_model(DLIB_68).stat().st_size > 1_000_000


SLOW_DETECTORS = {"dlib-mmod"}  # a CNN: ~10 s for this test on 2 CPU cores


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_DETECTORS else n
                                  for n in DETECTORS.names()])
def test_detector_contract(name: str, astronaut: np.ndarray) -> None:
    det = backends.detector(name)
    assert det.name == name and det.min_face > 0
    crop = np.ascontiguousarray(astronaut[:288, 96:384])  # the head and shoulders, face ~88 px
    face = (ASTRONAUT_FACE[0] - 96, ASTRONAUT_FACE[1], ASTRONAUT_FACE[2] - 96, ASTRONAUT_FACE[3])
    found = det.detect(crop)
    assert len(found) == 1
    assert box_iou(found[0].box, face) > 0.5
    assert all(isinstance(d.score, float) for d in found)
    # Gray input and RGB input find the same face; boxes are in the given image's pixels.
    gray = det.detect(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY))
    assert gray and box_iou(gray[0].box, found[0].box) > 0.7
    scaled = det.detect(cv2.resize(crop, (432, 432)))
    assert scaled and box_iou(scaled[0].scaled(2 / 3).box, found[0].box) > 0.6
    assert det.detect(_noise()[:160, :160]) == []
    with pytest.raises(ValueError, match="uint8"):
        det.detect(astronaut.astype(np.float32))


@pytest.mark.parametrize("name", LANDMARKERS.names())
def test_landmarker_contract(name: str, astronaut: np.ndarray) -> None:
    lmk = backends.landmarker(name)
    lm = lmk.landmarks(astronaut, ASTRONAUT_FACE)
    assert lm.dtype == np.float32 and lm.shape == (lmk.points, 2) and lmk.points >= 68
    x0, y0, x1, y1 = ASTRONAUT_FACE
    inside = (lm[:, 0] > x0 - 20) & (lm[:, 0] < x1 + 20) & (lm[:, 1] > y0 - 20) & (lm[:, 1] < y1 + 30)
    assert inside.all()
    # 68-point order: the image-left eye is left of the image-right eye, the chin below the nose.
    assert lm[36:42, 0].mean() < lm[42:48, 0].mean() and lm[8, 1] > lm[30, 1]
    # Moving the image moves the landmarks with it.
    shifted = np.roll(astronaut, (10, 15), axis=(0, 1))
    lm2 = lmk.landmarks(shifted, (x0 + 15, y0 + 10, x1 + 15, y1 + 10))
    assert np.allclose((lm2 - lm).mean(0), (15, 10), atol=1.5)
    with pytest.raises(ValueError):
        lmk.landmarks(astronaut, (50, 50, 50, 80))
    # Gray input works too (the tracker passes gray frames).
    lm_gray = lmk.landmarks(cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY), ASTRONAUT_FACE)
    assert np.median(np.linalg.norm(lm_gray[:68] - lm[:68], axis=1)) < 3


@pytest.mark.parametrize("name", EMBEDDERS.names())
def test_embedder_contract(name: str, astronaut: np.ndarray) -> None:
    emb = backends.embedder(name)
    lmk = backends.landmarker("dlib-68")
    hopper = portrait("grace_hopper")
    lm_a = lmk.landmarks(astronaut, ASTRONAUT_FACE)
    e_a = emb.embed(astronaut, lm_a)
    assert e_a.dtype == np.float32 and e_a.shape == (emb.dim,)
    # The same person, moved and relit, stays under the match distance; another person does not.
    m = cv2.getRotationMatrix2D((223.0, 127.0), 7.0, 1.1)
    moved = np.clip(cv2.warpAffine(astronaut, m, (512, 512)).astype(np.float32) * 0.85, 0, 255).astype(np.uint8)
    lm_moved = (lm_a.astype(np.float64) @ m[:, :2].T + m[:, 2]).astype(np.float32)
    e_moved = emb.embed(moved, lmk.landmarks(moved, (lm_moved[:, 0].min(), lm_moved[:, 1].min() - 15,
                                                     lm_moved[:, 0].max(), lm_moved[:, 1].max())))
    hop_box = backends.detector("dlib-hog").detect(hopper)[0].box
    e_h = emb.embed(hopper, lmk.landmarks(hopper, hop_box))
    same, other = float(np.linalg.norm(e_a - e_moved)), float(np.linalg.norm(e_a - e_h))
    assert same < emb.match_distance * 0.6 < other
    with pytest.raises(ValueError):
        emb.embed(astronaut[:, :, 0], lm_a)
