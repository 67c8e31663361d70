"""The registered face backends. Every plugin is imported and registered here, by name.

Loaded models are cached per process (they are read-only once loaded, and the 68-point model
alone takes about a second to read), so repeated extractions do not reload them.
"""

from __future__ import annotations

import functools
import importlib.util

from doppel.extract.base import DETECTORS, EMBEDDERS, LANDMARKERS, Detector, Embedder, Landmarker
from doppel.extract.dlib_68 import Dlib68Landmarker
from doppel.extract.dlib_hog import HogDetector
from doppel.extract.dlib_mmod import MmodDetector
from doppel.extract.dlib_resnet import DlibResnetEmbedder
from doppel.extract.mediapipe_mesh import MediaPipeMeshLandmarker

DETECTORS.register("dlib-hog")(HogDetector)
DETECTORS.register("dlib-mmod")(MmodDetector)
LANDMARKERS.register("dlib-68")(Dlib68Landmarker)
EMBEDDERS.register("dlib-resnet")(DlibResnetEmbedder)
if importlib.util.find_spec("mediapipe") is not None:  # the optional `mediapipe` extra
    LANDMARKERS.register("mediapipe-mesh")(MediaPipeMeshLandmarker)

__all__ = ["DETECTORS", "EMBEDDERS", "LANDMARKERS", "detector", "embedder", "landmarker"]


@functools.lru_cache(maxsize=8)
def detector(name: str, upsample: int = 0) -> Detector:
    return DETECTORS.create(name, upsample=upsample)


@functools.lru_cache(maxsize=4)
def landmarker(name: str) -> Landmarker:
    return LANDMARKERS.create(name)


@functools.lru_cache(maxsize=4)
def embedder(name: str) -> Embedder:
    return EMBEDDERS.create(name)
