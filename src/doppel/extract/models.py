"""Where the dlib model files live: the ``face_recognition_models`` package's ``models`` folder.

The package cannot be imported on modern setuptools (it needs ``pkg_resources``), so it is
located with :func:`importlib.util.find_spec` and never imported. Nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from doppel.core.errors import ConfigError

DLIB_68 = "shape_predictor_68_face_landmarks.dat"
DLIB_RESNET = "dlib_face_recognition_resnet_model_v1.dat"
DLIB_MMOD = "mmod_human_face_detector.dat"


def dlib_model(name: str) -> Path:
    """Path of one of face_recognition_models' files, or a :class:`ConfigError` saying what to install."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the dlib backends need the `face_recognition_models` package "
                          "(pip install face_recognition_models)")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / name
    if not path.is_file():
        raise ConfigError(f"face_recognition_models is installed but {path} is missing; reinstall it")
    return path
