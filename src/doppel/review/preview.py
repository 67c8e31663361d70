"""Frames of a render straight from its media, for the page to show before (or while) it is analysed.

Analysis writes every frame into the review cache as it goes; until a frame is there, the page asks for it
here. One sequential decoder per file is kept open: stepping forward (the usual way through a clip) costs
one decode per frame, a jump backwards restarts the decoder from the file's start.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from doppel.core.errors import DoppelError
from doppel.io.video import Frame, read_frames

FORWARD_LIMIT = 300  # frames decoded forward before restarting is no faster than stepping on


class _Decoder:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.frames: Iterator[Frame] | None = None
        self.last: Frame | None = None

    def at(self, index: int) -> np.ndarray | None:
        with self.lock:
            last = self.last
            if last is not None and last.index == index:
                return last.image
            if self.frames is None or last is None or not last.index < index <= last.index + FORWARD_LIMIT:
                self.frames, self.last = read_frames(self.path, start=index), None
            try:
                for frame in self.frames:
                    self.last = frame
                    if frame.index >= index:
                        return frame.image if frame.index == index else None
            except DoppelError:
                pass  # a damaged or missing file shows as a missing frame; analysis reports the error
            self.frames, self.last = None, None
            return None


class PreviewFrames:
    """RGB frames of media files by index, or None past the end or when the file cannot be read."""

    def __init__(self) -> None:
        self._decoders: dict[Path, _Decoder] = {}
        self._lock = threading.Lock()

    def frame(self, path: Path, index: int) -> np.ndarray | None:
        with self._lock:
            decoder = self._decoders.setdefault(path, _Decoder(path))
        return decoder.at(index)
