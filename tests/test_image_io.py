"""doppel.io.image: RGB(A) in and out for every image doppel codes, whatever order OpenCV keeps."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from doppel.core.errors import InputError, MediaError
from doppel.io.image import decode_image, encode_image, read_image, write_image

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (12, 20, 3), dtype=np.uint8)
RED = np.zeros((4, 6, 3), np.uint8)
RED[..., 0] = 255


@pytest.mark.parametrize("image", [
    RGB,
    RNG.integers(0, 256, (12, 20, 4), dtype=np.uint8),
    RNG.integers(0, 256, (12, 20), dtype=np.uint8),
    RNG.integers(0, 65536, (12, 20, 4), dtype=np.uint16),
    RNG.integers(0, 65536, (12, 20), dtype=np.uint16),
], ids=["rgb8", "rgba8", "grey8", "rgba16", "grey16"])
def test_png_round_trip_is_exact(image: np.ndarray, tmp_path: Path) -> None:
    assert np.array_equal(decode_image(encode_image(image, ".png"), mode="unchanged"), image)
    write_image(tmp_path / "a.png", image)
    assert np.array_equal(read_image(tmp_path / "a.png", mode="unchanged"), image)


def test_channel_order_is_rgb_outside_and_bgr_in_the_file() -> None:
    data = encode_image(RED, ".png")
    assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[0, 0].tolist() == [0, 0, 255]  # BGR
    assert decode_image(data)[0, 0].tolist() == [255, 0, 0]
    assert decode_image(data, mode="gray").shape == (4, 6)


def test_jpeg_is_close_and_16_bit_reads_as_8_bit() -> None:
    smooth = cv2.GaussianBlur(RGB, (0, 0), 3)
    back = decode_image(encode_image(smooth, ".jpg", jpeg_quality=95))
    assert back.shape == smooth.shape and np.abs(back.astype(int) - smooth).mean() < 3
    deep = (RGB.astype(np.uint16) * 257)
    assert np.array_equal(decode_image(encode_image(deep, ".png")), RGB)


def test_bad_input_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"shape \(12, 20, 2\) dtype uint8"):
        encode_image(RGB[..., :2])
    with pytest.raises(ValueError, match="float32"):
        write_image(tmp_path / "f.png", RGB.astype(np.float32))
    with pytest.raises(MediaError, match="not a readable image"):
        decode_image(b"not an image")
    (tmp_path / "bad.png").write_bytes(b"")
    with pytest.raises(MediaError, match="bad.png: not a readable image"):
        read_image(tmp_path / "bad.png")
    with pytest.raises(InputError, match="gone.png: no such file"):
        read_image(tmp_path / "gone.png")
    assert not list(tmp_path.glob(".*tmp*"))  # a failed write leaves nothing behind
