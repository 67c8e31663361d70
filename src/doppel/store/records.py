"""The typed records the store hands out and takes in: plain frozen dataclasses, no SQL, no I/O.

Stages (extract, train, merge, eval) may import these; only :mod:`doppel.store` reads and writes
them. Arrays keep the shape, dtype and units the docstrings give; paths are absolute unless named
``*_rel`` (relative to the workspace root).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from doppel.ops.align import transform_points

RunStatus = Literal["running", "done", "failed", "interrupted"]
FrameStatus = Literal["swapped", "passthrough", "kept"]


@dataclass(frozen=True)
class ClipRecord:
    id: int
    path: Path
    content_hash: str
    kind: str  # video | images | image
    width: int
    height: int
    fps: float
    frame_count: int
    duration: float
    has_audio: bool
    added_at: str


@dataclass(frozen=True)
class NewClip:
    """A clip to register (see :class:`ClipRecord`)."""

    path: str
    content_hash: str
    kind: str
    width: int
    height: int
    fps: float
    frame_count: int
    duration: float
    has_audio: bool


@dataclass(frozen=True)
class FaceRecord:
    """One extracted face. Landmarks are frame pixels ``(N, 2)`` float32 in (x, y); ``transform``
    (float64 ``(2, 3)``) maps frame pixels to the ``size`` x ``size`` aligned crop at ``aligned_path``."""

    id: int
    identity: str
    clip_id: int
    frame_index: int
    time: float
    track_id: int | None
    bbox: np.ndarray
    det_score: float
    landmarks: np.ndarray
    landmarks_smooth: np.ndarray
    landmark_score: float | None
    yaw: float
    pitch: float
    roll: float
    blur: float
    embedding: np.ndarray | None
    transform: np.ndarray
    face_type: str
    size: int
    aligned_path: Path
    excluded: bool
    exclude_reason: str | None

    def aligned_landmarks(self, *, smooth: bool = True) -> np.ndarray:
        """Landmarks in aligned-crop pixels (the crop was cut with the smoothed transform)."""
        return transform_points(self.landmarks_smooth if smooth else self.landmarks, self.transform)


@dataclass(frozen=True)
class NewTrack:
    """A track to insert; ``key`` links faces to it before it has a database id."""

    key: int
    first_frame: int
    last_frame: int
    length: int
    embedding: np.ndarray | None  # float32 (D,)
    similarity: float | None


@dataclass(frozen=True)
class NewFace:
    """A face row to insert (see :class:`FaceRecord` for the meaning and shape of each field)."""

    track_key: int | None
    frame_index: int
    time: float
    bbox: tuple[float, float, float, float]
    det_score: float
    landmarks: np.ndarray
    landmarks_smooth: np.ndarray
    landmark_score: float | None
    yaw: float
    pitch: float
    roll: float
    blur: float
    embedding: np.ndarray | None
    transform: np.ndarray
    face_type: str
    size: int
    aligned_rel: str  # relative to the workspace


@dataclass(frozen=True)
class ModelRecord:
    """A row of ``models`` with identity names resolved and the folder made absolute."""

    id: int
    name: str
    path: Path
    arch: str
    preset: str | None
    resolution: int
    face_type: str
    src_identity: str | None
    dst_identity: str | None
    base_model: str | None
    step: int
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class RenderRecord:
    """One merge of one model into one clip. ``settings`` is the resolved merge settings as stored
    (JSON); :func:`doppel.merge.settings.validate_settings` turns it into a settings object."""

    id: int
    uid: str
    model_id: int | None
    clip_id: int
    output_path: str
    settings: dict[str, Any]
    settings_hash: str
    watermark_payload: int | None
    consent_hash: str | None
    status: str
    created_at: str
    finished_at: str | None


@dataclass(frozen=True)
class FrameRow:
    """What merge did to one frame of a render."""

    frame_index: int
    status: str  # FrameStatus
    occlusion: float | None
    shot_cut: bool


@dataclass(frozen=True)
class OverrideRecord:
    """Settings changes (a partial settings object, as stored) for frames ``first..last`` inclusive."""

    id: int
    render_id: int
    first: int
    last: int
    changes: dict[str, Any]


@dataclass(frozen=True)
class ScoreRecord:
    """Review's glitch score of one frame, with that frame's merge status (None if never merged)."""

    frame_index: int
    score: float
    reasons: list[dict[str, Any]]
    status: str | None
    shot_cut: bool


CONSENT_VERSION = 1


def canonical_json(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def record_hash(fields: dict[str, Any]) -> str:
    """SHA-256 (hex) of a consent record's canonical JSON."""
    return hashlib.sha256(canonical_json(fields)).hexdigest()


@dataclass(frozen=True)
class ConsentRecord:
    """Who agreed to their likeness being used as a source, to what, on what basis (see
    :mod:`doppel.provenance.consent`); ``record_hash`` is the hash of :meth:`canonical`."""

    identity: str
    subject: str
    scope: str
    basis: str
    evidence_name: str | None
    evidence_sha256: str | None
    created_at: str
    record_hash: str
    id: int | None = None

    def canonical(self) -> dict[str, Any]:
        return {"version": CONSENT_VERSION, "identity": self.identity, "subject": self.subject,
                "scope": self.scope, "basis": self.basis, "evidence_name": self.evidence_name,
                "evidence_sha256": self.evidence_sha256, "created_at": self.created_at}

    def intact(self) -> bool:
        """Whether the record's content still matches its hash (no one edited it by hand)."""
        return record_hash(self.canonical()) == self.record_hash

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class JobRecord:
    id: int
    kind: str
    status: str
    params: dict[str, Any]
    result: dict[str, Any] | None
    started_at: str
    finished_at: str | None
    extra: dict[str, Any] = field(default_factory=dict)
