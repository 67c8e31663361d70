"""The optional visible label: a small "AI-altered" tag in a corner, for platforms that require one."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import cv2
import numpy as np

Corner = Literal["top-left", "top-right", "bottom-left", "bottom-right"]
CORNERS: tuple[Corner, ...] = ("top-left", "top-right", "bottom-left", "bottom-right")
DEFAULT_TEXT = "AI-altered"


@lru_cache(maxsize=16)
def _tag(text: str, height: int, width: int, corner: Corner) -> tuple[np.ndarray, np.ndarray, int, int]:
    """The tag's RGB pixels, its alpha (0..1), and its top-left position, for one frame size."""
    scale = max(0.35, min(height, width) / 900.0)
    thickness = max(1, round(scale * 1.6))
    font = cv2.FONT_HERSHEY_SIMPLEX
    (tw, th), base = cv2.getTextSize(text, font, scale, thickness)
    pad = max(3, round(6 * scale))
    w, h = min(tw + 2 * pad, width), min(th + base + 2 * pad, height)
    box = np.zeros((h, w, 3), np.uint8)
    cv2.putText(box, text, (pad, pad + th), font, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    alpha = np.full((h, w, 1), 0.55, np.float32)  # translucent dark plate
    text_alpha = box.max(axis=2, keepdims=True).astype(np.float32) / 255.0
    alpha = np.maximum(alpha, text_alpha)
    margin = max(4, round(min(height, width) * 0.02))
    x = margin if corner.endswith("left") else width - w - margin
    y = margin if corner.startswith("top") else height - h - margin
    return box, alpha, max(0, x), max(0, y)


def add_label(image: np.ndarray, corner: Corner = "bottom-right", text: str = DEFAULT_TEXT) -> np.ndarray:
    """Return a copy of ``image`` (RGB uint8 (H, W, 3)) with a small legible tag in ``corner``."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 (H, W, 3) image, got {image.shape} {image.dtype}")
    if corner not in CORNERS:
        raise ValueError(f"unknown corner {corner!r}; choose one of {', '.join(CORNERS)}")
    height, width = image.shape[:2]
    box, alpha, x, y = _tag(text, height, width, corner)
    h, w = min(box.shape[0], height - y), min(box.shape[1], width - x)
    out = image.copy()
    region = out[y:y + h, x:x + w].astype(np.float32)
    blended = region * (1 - alpha[:h, :w]) + box[:h, :w].astype(np.float32) * alpha[:h, :w]
    out[y:y + h, x:x + w] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
    return out
