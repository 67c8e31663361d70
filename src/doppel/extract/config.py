"""Extraction settings, the per-clip report, and the small checks shared by the CLI and the pipeline."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from doppel.core.config import Settings
from doppel.extract.track import TrackerConfig
from doppel.io.video import sequence_files
from doppel.ops.align import FaceType


class ExtractConfig(Settings):
    """Every setting of extraction (see :class:`~doppel.extract.track.TrackerConfig` for tracking)."""

    FLAGS: ClassVar[Mapping[str, str]] = {"every": "--every", "size": "--size", "face_type": "--face-type",
                                          "detector": "--detector", "landmarker": "--landmarker"}

    every: int = Field(1, ge=1)
    size: int = Field(256, ge=32, le=2048)
    face_type: FaceType = "full"
    detector: str = "dlib-hog"
    landmarker: str = "dlib-68"
    embedder: str = "dlib-resnet"
    upsample: int = Field(0, ge=0, le=3)
    detect_size: int = Field(640, ge=64)
    detect_every: int = Field(10, ge=1)
    threshold: float = 0.0
    track_threshold: float = -0.4
    max_coast: int = Field(2, ge=0)
    check_every: int = Field(2, ge=1)
    embed_every_seconds: float = Field(2.0, gt=0)
    smooth_lag: int | None = Field(None, ge=0)  # frames; None: about 0.12 s of footage
    image_format: Literal["jpg", "png"] = "jpg"
    jpeg_quality: int = Field(95, ge=1, le=100)
    screen_every_seconds: float = Field(1.0, gt=0)

    def tracker(self) -> TrackerConfig:
        return TrackerConfig(detect_size=self.detect_size, detect_every=self.detect_every,
                             threshold=self.threshold, track_threshold=self.track_threshold,
                             max_coast=self.max_coast, check_every=self.check_every)


@dataclass
class ClipReport:
    """What extracting one clip did. ``fps`` is examined frames per wall-clock second."""

    identity: str
    clip: str
    clip_id: int
    frames: int
    frames_with_face: int
    faces: int
    tracks: int
    person_tracks: int
    similarity: float | None
    seconds: float
    fps: float
    stages: dict[str, float] = field(default_factory=dict)
    screen: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def content_hash(path: Path) -> str:
    """SHA-256 of a file's bytes, or of the names and bytes of an image sequence's frames (a folder or a
    ``%06d``/``####`` pattern) (hex)."""
    h = hashlib.sha256()
    seq = None if path.is_file() else sequence_files(path)
    files = seq[0] if seq is not None else [path]
    for file in files:
        if seq is not None:
            h.update(file.name.encode() + b"\0")
        with open(file, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()
