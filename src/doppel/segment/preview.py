"""Contact sheets of what a segmenter sees: each crop beside itself with the visible face tinted green,
glasses magenta, and everything kept off the swap darkened (uint8 RGB in, uint8 RGB out)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np


def overlay(crop: np.ndarray, face: np.ndarray, glasses: np.ndarray) -> np.ndarray:
    """``crop`` uint8 ``(S, S, 3)`` and its masks float ``(S, S)`` -> uint8 ``(S, 2S, 3)``: crop | overlay."""
    img = crop.astype(np.float32)
    tint = img * (0.35 + 0.65 * face[..., None])
    tint = tint * (1.0 - 0.45 * face[..., None]) + np.array([40.0, 220.0, 60.0]) * 0.45 * face[..., None]
    tint = tint * (1.0 - 0.6 * glasses[..., None]) + np.array([230.0, 40.0, 230.0]) * 0.6 * glasses[..., None]
    out = np.clip(tint, 0, 255).astype(np.uint8)
    contours, _ = cv2.findContours((face > 0.5).astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(out, contours, -1, (255, 255, 0), 1)
    return np.concatenate([crop, out], axis=1)


def sheet(tiles: Sequence[np.ndarray], columns: int = 4) -> np.ndarray:
    """Tiles of one size in rows of ``columns`` (the last row padded with black)."""
    if not tiles:
        raise ValueError("no tiles to lay out")
    blank = np.zeros_like(tiles[0])
    padded = list(tiles) + [blank] * (-len(tiles) % columns)
    rows = [np.concatenate(padded[i:i + columns], axis=1) for i in range(0, len(padded), columns)]
    return np.concatenate(rows, axis=0)
