"""The before/after contact sheet: face crops of the original (top row) over the merged clip
(bottom row) at a few frames, with the source identity's own face at the left for comparison.
Tiles show the face at about its size in the clip (:func:`sheet_tile`), so the sheet shows its detail."""

from __future__ import annotations

import cv2
import numpy as np

TILE = 192
_LABEL_H = 22
_BG = (24, 24, 24)
_FG = (235, 235, 235)


def face_crop(frame: np.ndarray, box: tuple[float, float, float, float], *, margin: float = 1.8,
              size: int = TILE) -> np.ndarray:
    """A ``size`` x ``size`` uint8 RGB crop of ``frame`` centred on ``box`` (side: ``margin`` x the box's),
    padded with black where it leaves the frame."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * margin
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    scale = size / max(side, 1.0)
    m = np.array([[scale, 0, size / 2 - cx * scale], [0, scale, size / 2 - cy * scale]], dtype=np.float64)
    return cv2.warpAffine(frame, m, (size, size), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def sheet_tile(boxes: list[tuple[float, float, float, float]], *, margin: float = 1.8) -> int:
    """The tile side that shows these faces (``(x0, y0, x1, y1)`` boxes) at about 100 %: their median side
    times ``margin``, at least ``TILE`` and at most twice that (so a blur in the face is not hidden by
    shrinking it)."""
    if not boxes:
        return TILE
    side = float(np.median([max(x1 - x0, y1 - y0) for x0, y0, x1, y1 in boxes])) * margin
    return int(min(2 * TILE, max(TILE, round(side / 8) * 8)))


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    bar = np.full((_LABEL_H, tile.shape[1], 3), _BG, np.uint8)
    cv2.putText(bar, text, (4, _LABEL_H - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.42, _FG, 1, cv2.LINE_AA)
    return np.vstack([tile, bar])


def _blank(size: int, text: str = "") -> np.ndarray:
    return _label(np.full((size, size, 3), _BG, np.uint8), text)


def contact_sheet(before: list[np.ndarray], after: list[np.ndarray], labels: list[str], *,
                  source: np.ndarray | None = None, source_label: str = "source", title: str = "",
                  top_label: str = "original") -> np.ndarray:
    """uint8 RGB sheet: a title line, then the ``before`` tiles (captioned ``top_label``) over the ``after``
    tiles, each column captioned by its ``labels`` entry (bottom row). Tiles are square, all of one size
    (``TILE`` from :func:`face_crop` by default)."""
    if not (len(before) == len(after) == len(labels)) or not before:
        raise ValueError(f"need as many before/after tiles as labels (>= 1), got {len(before)}/{len(after)}/"
                         f"{len(labels)}")
    size = before[0].shape[0]
    if any(t.shape != (size, size, 3) for t in (*before, *after)):
        raise ValueError(f"tiles must all be ({size}, {size}, 3)")
    top = [_label(t, top_label) for t in before]
    bottom = [_label(t, lab) for t, lab in zip(after, labels, strict=True)]
    if source is not None:
        src = cv2.resize(source, (size, size), interpolation=cv2.INTER_AREA)
        top.insert(0, _label(src, source_label))
        bottom.insert(0, _blank(size))
    gap = np.full((size + _LABEL_H, 4, 3), _BG, np.uint8)

    def row(tiles: list[np.ndarray]) -> np.ndarray:
        parts: list[np.ndarray] = []
        for t in tiles:
            parts += [t, gap]
        return np.hstack(parts[:-1])

    grid = np.vstack([row(top), np.full((4, row(top).shape[1], 3), _BG, np.uint8), row(bottom)])
    head = np.full((28, grid.shape[1], 3), _BG, np.uint8)
    cv2.putText(head, title, (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.5, _FG, 1, cv2.LINE_AA)
    return np.vstack([head, grid])
