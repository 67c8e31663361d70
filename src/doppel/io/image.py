"""Still images as arrays: decode and encode bytes, read and write files.

This is the one place doppel meets OpenCV's BGR channel order; everything outside ``doppel.io``
sees RGB. Conventions at the boundary: an image is ``(H, W, 3)`` RGB, ``(H, W, 4)`` RGBA or
``(H, W)`` grey, ``uint8``, or ``uint16`` where a compositing layer keeps 16 bits. The format
follows the extension (``.png``, ``.jpg``, ...).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from doppel.core.errors import InputError, MediaError
from doppel.io.atomic import atomic_path

ReadMode = Literal["rgb", "gray", "unchanged"]
_FLAGS: dict[ReadMode, int] = {
    "rgb": cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH,
    "gray": cv2.IMREAD_GRAYSCALE,
    "unchanged": cv2.IMREAD_UNCHANGED,
}


def _swap_red_blue(image: np.ndarray) -> np.ndarray:
    """RGB(A) <-> BGR(A); grey unchanged. The same swap goes both ways."""
    if image.ndim == 2:
        return image
    return cv2.cvtColor(image, cv2.COLOR_RGB2BGR if image.shape[2] == 3 else cv2.COLOR_RGBA2BGRA)


def _check(image: np.ndarray) -> None:
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (3, 4))) or \
            image.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"expected an (H, W), (H, W, 3) RGB or (H, W, 4) RGBA uint8/uint16 image, "
                         f"got shape {image.shape} dtype {image.dtype}")


def _encode(image: np.ndarray, ext: str, png_compression: int, jpeg_quality: int) -> bytes | None:
    _check(image)
    params: list[int] = []
    if ext.lower() == ".png":
        params = [cv2.IMWRITE_PNG_COMPRESSION, png_compression]
    elif ext.lower() in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]
    ok, buf = cv2.imencode(ext, _swap_red_blue(np.ascontiguousarray(image)), params)
    return buf.tobytes() if ok else None


def encode_image(image: np.ndarray, ext: str = ".png", *, png_compression: int = 3, jpeg_quality: int = 95) -> bytes:
    """The bytes of ``image`` (grey, RGB or RGBA; uint8 or uint16) as an ``ext`` file (``.png``, ``.jpg``...)."""
    data = _encode(image, ext, png_compression, jpeg_quality)
    if data is None:
        raise MediaError(f"could not encode a {ext} image of shape {image.shape} dtype {image.dtype}")
    return data


def _decode(buf: np.ndarray, mode: ReadMode) -> np.ndarray | None:
    img = cv2.imdecode(buf, _FLAGS[mode]) if buf.size else None
    if img is None:
        return None
    if mode == "rgb" and img.dtype == np.uint16:
        img = (img / 257.0).round().astype(np.uint8)
    return _swap_red_blue(img)


def decode_image(data: bytes, *, mode: ReadMode = "rgb") -> np.ndarray:
    """An image from the bytes of an image file; raises ``MediaError`` when they are not one.

    ``rgb``: uint8 ``(H, W, 3)`` (16-bit images scaled down); ``gray``: uint8 ``(H, W)``;
    ``unchanged``: as stored (grey, RGB or RGBA; uint8 or uint16).
    """
    img = _decode(np.frombuffer(data, np.uint8), mode)
    if img is None:
        raise MediaError(f"{len(data)} bytes that are not a readable image")
    return img


def read_image(path: str | Path, *, mode: ReadMode = "rgb") -> np.ndarray:
    """Read a still image (``mode`` as in :func:`decode_image`); raises ``InputError`` when the file
    is missing and ``MediaError`` when it is not a readable image."""
    path = Path(path)
    if not path.exists():
        raise InputError("no such file", path=path)
    img = _decode(np.fromfile(path, dtype=np.uint8), mode)
    if img is None:
        raise MediaError("not a readable image", path=path)
    return img


def write_image(path: str | Path, image: np.ndarray, *, png_compression: int = 3, jpeg_quality: int = 95) -> None:
    """Write a grey, RGB or RGBA image (uint8 or uint16) atomically; the format follows the extension."""
    path = Path(path)
    data = _encode(image, path.suffix, png_compression, jpeg_quality)
    if data is None:
        raise MediaError("could not encode image", path=path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
