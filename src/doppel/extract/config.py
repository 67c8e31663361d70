"""Extraction settings, the per-clip report, and the small checks shared by the CLI and the pipeline."""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from doppel.core.errors import ConfigError
from doppel.extract.track import TrackerConfig
from doppel.ops.align import FACE_TYPES, FaceType

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class ExtractConfig:
    """Every setting of extraction (see :class:`~doppel.extract.track.TrackerConfig` for tracking)."""

    every: int = 1
    size: int = 256
    face_type: FaceType = "full"
    detector: str = "dlib-hog"
    landmarker: str = "dlib-68"
    embedder: str = "dlib-resnet"
    upsample: int = 0
    detect_size: int = 640
    detect_every: int = 10
    threshold: float = 0.0
    track_threshold: float = -0.4
    max_coast: int = 2
    check_every: int = 2
    embed_every_seconds: float = 2.0
    smooth_lag: int | None = None  # frames; None: about 0.12 s of footage
    image_format: Literal["jpg", "png"] = "jpg"
    jpeg_quality: int = 95
    screen_every_seconds: float = 1.0

    def __post_init__(self) -> None:
        checks = [
            (self.every >= 1, f"--every must be >= 1, got {self.every}"),
            (32 <= self.size <= 2048, f"--size must be within 32..2048 pixels, got {self.size}"),
            (self.face_type in FACE_TYPES, f"--face-type must be one of {', '.join(FACE_TYPES)}, "
                                           f"got {self.face_type!r}"),
            (self.detect_every >= 1, f"detect_every must be >= 1, got {self.detect_every}"),
            (self.check_every >= 1, f"check_every must be >= 1, got {self.check_every}"),
            (self.detect_size >= 64, f"detect_size must be >= 64, got {self.detect_size}"),
            (self.image_format in ("jpg", "png"), f"image_format must be jpg or png, got {self.image_format!r}"),
            (1 <= self.jpeg_quality <= 100, f"jpeg_quality must be within 1..100, got {self.jpeg_quality}"),
            (self.embed_every_seconds > 0, "embed_every_seconds must be > 0"),
            (self.smooth_lag is None or self.smooth_lag >= 0, "smooth_lag must be >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

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


def check_identity_name(name: str) -> str:
    if not _NAME.match(name):
        raise ConfigError(f"identity name {name!r} must be 1-64 letters, digits, '.', '_' or '-', "
                          "starting with a letter or digit")
    return name


def content_hash(path: Path) -> str:
    """SHA-256 of a file's bytes, or of the names and bytes of a folder's images (hex)."""
    h = hashlib.sha256()
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            h.update(file.name.encode() + b"\0")
        with open(file, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()
