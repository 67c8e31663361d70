"""What review precomputes per render, under ``WS/renders/<uid>/review/``.

- ``frames/orig_NNNNNN.jpg``, ``frames/out_NNNNNN.jpg``: the plate and the merged frame;
- ``frames/mask_NNNNNN.png``: the frame's matte (8-bit, 255 = all swap), swapped frames only;
- ``thumbs_KKK.jpg``: sprite sheets of :data:`PER_SHEET` thumbnails of the merged frames;
- ``measures.json`` and ``masks.npy``: per-frame measurements (:class:`~doppel.review.glitches.Measure`)
  and face-space masks (uint8 ``(N, 48, 48)``; plain ``.npy``, loaded without pickle);
- ``scores.json``: the compact per-frame summary the web page loads in one request.

Every file is written atomically. The page never triggers a recomputation by reading.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from doppel.core.errors import InputError, WorkspaceError
from doppel.io.atomic import write_bytes_atomic, write_text_atomic
from doppel.io.image import ReadMode, encode_image, read_image
from doppel.store import Workspace

CACHE_VERSION = 3  # 3: every person of a multi-person render measured; 2: soft mattes, regions at half the peak
THUMB_WIDTH = 96
SHEET_COLUMNS = 20
PER_SHEET = 400  # 20 x 20 thumbnails per sprite sheet
JPEG_QUALITY = 90
UID = re.compile(r"^[0-9a-f]{8,64}$")


def encode_jpeg(rgb: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """The JPEG bytes of a uint8 RGB image, at the review cache's quality."""
    return encode_image(rgb, ".jpg", jpeg_quality=quality)


def decode_image(path: Path, mode: ReadMode = "rgb") -> np.ndarray | None:
    """A cached image (uint8 RGB, or grey with ``mode="gray"``), or None when it is missing or unreadable:
    the cache may lag behind a render, and the page shows what there is."""
    try:
        return read_image(path, mode=mode)
    except InputError:
        return None


class ReviewCache:
    """Paths and readers/writers of one render's review cache."""

    def __init__(self, ws: Workspace, uid: str) -> None:
        if not UID.match(uid):
            raise WorkspaceError(f"not a render id: {uid!r}", path=ws.root)
        self.uid = uid
        self.root = ws.renders_dir() / uid / "review"

    # -- paths -------------------------------------------------------------------------------------
    def frame(self, kind: str, index: int) -> Path:
        if kind not in ("orig", "out", "mask") or index < 0:
            raise ValueError(f"bad cached frame {kind!r} {index}")
        return self.root / "frames" / f"{kind}_{index:06d}.{'png' if kind == 'mask' else 'jpg'}"

    def sheet(self, number: int) -> Path:
        return self.root / f"thumbs_{number:03d}.jpg"

    @property
    def measures_path(self) -> Path:
        return self.root / "measures.json"

    @property
    def masks_path(self) -> Path:
        return self.root / "masks.npy"

    @property
    def scores_path(self) -> Path:
        return self.root / "scores.json"

    def ready(self) -> bool:
        """Whether an analysis this doppel can read is cached (one an older doppel wrote counts as none)."""
        if not (self.scores_path.is_file() and self.measures_path.is_file()):
            return False
        try:
            self.read_json(self.scores_path)  # checks the version
        except WorkspaceError:
            return False
        return True

    # -- frames ------------------------------------------------------------------------------------
    def write_frame(self, index: int, original: np.ndarray | None, output: np.ndarray,
                    matte: np.ndarray | None) -> None:
        if original is not None:
            write_bytes_atomic(self.frame("orig", index), encode_jpeg(original))
        write_bytes_atomic(self.frame("out", index), encode_jpeg(output))
        mask_path = self.frame("mask", index)
        if matte is None:
            mask_path.unlink(missing_ok=True)
        else:
            png = encode_image(np.ascontiguousarray(matte, np.uint8), ".png", png_compression=1)
            write_bytes_atomic(mask_path, png)

    # -- thumbnails --------------------------------------------------------------------------------
    @staticmethod
    def thumb_size(width: int, height: int) -> tuple[int, int]:
        return THUMB_WIDTH, max(8, round(THUMB_WIDTH * height / max(width, 1)))

    @staticmethod
    def thumbnail(rgb: np.ndarray) -> np.ndarray:
        w, h = ReviewCache.thumb_size(rgb.shape[1], rgb.shape[0])
        return cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)

    def write_sheets(self, thumbs: dict[int, np.ndarray], frame_count: int, size: tuple[int, int]) -> int:
        """Write all sprite sheets from ``thumbs`` (frame -> (h, w, 3)); missing frames stay black."""
        w, h = size
        sheets = (frame_count + PER_SHEET - 1) // PER_SHEET
        for number in range(sheets):
            count = min(PER_SHEET, frame_count - number * PER_SHEET)
            rows = (count + SHEET_COLUMNS - 1) // SHEET_COLUMNS
            sheet = np.zeros((rows * h, SHEET_COLUMNS * w, 3), np.uint8)
            for k in range(count):
                t = thumbs.get(number * PER_SHEET + k)
                if t is not None:
                    r, c = divmod(k, SHEET_COLUMNS)
                    sheet[r * h:(r + 1) * h, c * w:(c + 1) * w] = t
            write_bytes_atomic(self.sheet(number), encode_jpeg(sheet, 80))
        return sheets

    def update_sheet_cells(self, thumbs: dict[int, np.ndarray], size: tuple[int, int]) -> None:
        """Replace some thumbnails in their sheets (after re-rendering frames)."""
        w, h = size
        by_sheet: dict[int, list[int]] = {}
        for index in thumbs:
            by_sheet.setdefault(index // PER_SHEET, []).append(index)
        for number, indices in by_sheet.items():
            sheet = decode_image(self.sheet(number))
            if sheet is None:
                continue
            for index in indices:
                r, c = divmod(index % PER_SHEET, SHEET_COLUMNS)
                if (r + 1) * h <= sheet.shape[0]:
                    sheet[r * h:(r + 1) * h, c * w:(c + 1) * w] = thumbs[index]
            write_bytes_atomic(self.sheet(number), encode_jpeg(sheet, 80))

    # -- measurements and scores -------------------------------------------------------------------
    def write_json(self, path: Path, data: dict[str, Any]) -> None:
        write_text_atomic(path, json.dumps(data, separators=(",", ":")))

    def read_json(self, path: Path) -> dict[str, Any]:
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise WorkspaceError(f"review cache unreadable ({exc}); run `doppel glitches` again", path=path) from None
        if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
            raise WorkspaceError("review cache is from another version; run `doppel glitches` again", path=path)
        return data

    def person_masks_path(self, person: int) -> Path:
        """Person ``person``'s crop-space masks (0: the render's own model; others in a multi-person render)."""
        return self.masks_path if person == 0 else self.root / f"masks-{person}.npy"

    def write_masks(self, masks: np.ndarray, person: int = 0) -> None:
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(masks, dtype=np.uint8), allow_pickle=False)
        write_bytes_atomic(self.person_masks_path(person), buf.getvalue())

    def read_masks(self, person: int = 0) -> np.ndarray | None:
        path = self.person_masks_path(person)
        if not path.is_file():
            return None
        return np.load(path, allow_pickle=False)
