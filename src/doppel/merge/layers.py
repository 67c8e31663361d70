"""Compositing layers: per swapped frame, what a compositor needs to finish the shot elsewhere.

In ``DIR``, for frame ``N`` (six digits):

- ``face_N.png``: the swapped face in aligned-crop space, RGBA, 16 bits per channel (the model's
  float output is kept at 16-bit precision), alpha = the final matte; doppel's watermark is in its
  colour and its content credentials are embedded (like every face doppel writes);
- ``matte_N.png``: the matte alone, 16-bit grey;
- ``transform_N.json``: ``frame_to_crop`` and ``crop_to_frame`` (2x3 affine, pixel centres at
  integer coordinates, as OpenCV's ``warpAffine``), the crop size, the frame size, the occlusion
  score, and the render it belongs to;
- ``doppel-manifest.json``: the signed manifest over every file above (see
  :mod:`doppel.provenance.manifest`), written when the merge finishes.

Place the face with ``warpAffine(face, crop_to_frame, (width, height))``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from doppel.core.errors import InputError, MediaError
from doppel.io.atomic import write_bytes_atomic, write_text_atomic
from doppel.io.image import encode_image, read_image
from doppel.ops.align import invert

LAYERS_VERSION = 1


def _png16(image: np.ndarray) -> bytes:
    """A float image in [0, 1] (grey ``(S, S)`` or RGBA ``(S, S, 4)``) as 16-bit PNG bytes."""
    return encode_image(np.clip(image * 65535.0 + 0.5, 0, 65535).astype(np.uint16), ".png", png_compression=1)


def write_layers(folder: Path, frame_index: int, face: np.ndarray, matte: np.ndarray, transform: np.ndarray,
                 frame_size: tuple[int, int], occlusion: float | None, mark: Callable[[np.ndarray], np.ndarray],
                 render: dict[str, Any]) -> list[Path]:
    """``face``: float32 ``(S, S, 3)`` RGB in [0, 1] (``mark`` puts the watermark in it); ``matte``: float32
    ``(S, S)``; ``frame_size`` (w, h); ``render``: uid and payload, recorded in the transform. Returns the
    files written."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{frame_index:06d}"
    rgba = np.concatenate([mark(face), matte[..., None]], axis=2)
    paths = [folder / f"face_{stem}.png", folder / f"matte_{stem}.png", folder / f"transform_{stem}.json"]
    write_bytes_atomic(paths[0], _png16(rgba))
    write_bytes_atomic(paths[1], _png16(matte))
    info: dict[str, Any] = {
        "version": LAYERS_VERSION, "frame_index": frame_index, "crop_size": int(face.shape[0]),
        "frame_width": frame_size[0], "frame_height": frame_size[1],
        "frame_to_crop": np.asarray(transform).tolist(), "crop_to_frame": invert(transform).tolist(),
        "occlusion": occlusion, **render,
    }
    write_text_atomic(paths[2], json.dumps(info, indent=1))
    return paths


def read_layer(folder: Path, frame_index: int) -> tuple[np.ndarray, dict[str, Any]]:
    """The RGBA face (float32 ``(S, S, 4)`` in [0, 1]) and transform record of one frame."""
    stem = f"{frame_index:06d}"
    path = folder / f"face_{stem}.png"
    try:
        data = read_image(path, mode="unchanged")
    except InputError:
        raise MediaError("missing or unreadable layer", path=path) from None
    rgba = data.astype(np.float32) / 65535.0
    return rgba, json.loads((folder / f"transform_{stem}.json").read_text())
