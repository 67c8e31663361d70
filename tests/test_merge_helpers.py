"""Shared helpers for the merge tests: synthetic faces with known landmarks, workspace rows, a
test-double swapper. (No tests in here; other test_merge*/test_colour*/test_blend* modules import it.)"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from conftest import make_clip
from doppel.extract.config import content_hash
from doppel.ops.align import estimate_transform
from doppel.store import Workspace
from doppel.store.records import NewClip, NewFace
from doppel.workflow.workspace import create_workspace


def mean_shape() -> np.ndarray:
    """A plausible 68-point face in the unit square (iBUG order), for synthetic faces."""
    pts: list[tuple[float, float]] = []
    for a in np.linspace(np.pi, 0, 17):  # jaw: left ear, down round the chin, right ear
        pts.append((0.5 + 0.42 * np.cos(a), 0.42 + 0.5 * np.sin(a)))
    for x0 in (0.18, 0.57):  # brows
        pts += [(x0 + 0.0625 * i, 0.30 - 0.03 * np.sin(np.pi * i / 4)) for i in range(5)]
    pts += [(0.5, 0.36 + 0.06 * i) for i in range(4)]  # nose bridge 27-30 (30 = tip at 0.54)
    pts += [(0.42 + 0.04 * i, 0.6) for i in range(5)]  # nostrils 31-35
    for cx in (0.32, 0.68):  # eyes 36-47
        pts += [(cx + 0.07 * np.cos(a), 0.40 - 0.03 * np.sin(a)) for a in np.linspace(np.pi, -np.pi, 7)[:6]]
    pts += [(0.5 + 0.14 * np.cos(a), 0.75 - 0.06 * np.sin(a)) for a in np.linspace(np.pi, -np.pi, 13)[:12]]
    pts += [(0.5 + 0.10 * np.cos(a), 0.75 - 0.03 * np.sin(a)) for a in np.linspace(np.pi, -np.pi, 9)[:8]]
    return np.array(pts, dtype=np.float64)


def draw_face(frame: np.ndarray, landmarks: np.ndarray) -> None:
    """Paint a cartoon face with these landmarks into ``frame`` (uint8 RGB, in place)."""
    def poly(idx: list[int] | range, colour: tuple[int, int, int]) -> None:
        hull = cv2.convexHull(np.round(landmarks[list(idx)]).astype(np.int32))
        cv2.fillConvexPoly(frame, hull, colour, lineType=cv2.LINE_AA)

    poly(list(range(0, 27)), (215, 170, 140))
    poly(range(36, 42), (60, 40, 30))
    poly(range(42, 48), (60, 40, 30))
    poly(range(48, 60), (170, 60, 70))
    cv2.polylines(frame, [np.round(landmarks[17:22]).astype(np.int32)], False, (90, 60, 40), 2)
    cv2.polylines(frame, [np.round(landmarks[22:27]).astype(np.int32)], False, (90, 60, 40), 2)


def face_clip(path: Path, n: int = 24, *, size: tuple[int, int] = (160, 120), absent: tuple[int, ...] = (),
              audio: bool = True, seed: int = 0, cut_at: int | None = None, pts: list[int] | None = None,
              time_base: Fraction | None = None) -> tuple[Path, dict[int, np.ndarray]]:
    """A clip with a slowly moving synthetic face; frames in ``absent`` have none; from ``cut_at`` on the
    background is another shot's. Returns the clip and the landmarks of each frame with a face."""
    w, h = size
    rng = np.random.default_rng(seed)
    base, other = (cv2.resize(rng.integers(lo, lo + 80, (h // 8, w // 8, 3), dtype=np.uint8), (w, h),
                              interpolation=cv2.INTER_LINEAR) for lo in (40, 150))
    other[..., 2] //= 3  # another shot: brighter and yellower
    shape = mean_shape()
    frames, marks = [], {}
    for i in range(n):
        img = (other if cut_at is not None and i >= cut_at else base).copy()
        if i not in absent:
            centre = np.array([w * 0.5 + 3 * np.sin(i / 5), h * 0.48 + 2 * np.cos(i / 7)])
            lm = (shape - 0.5) * (h * 0.55) + centre
            draw_face(img, lm)
            marks[i] = lm
        frames.append(img)
    return make_clip(path, frames, audio=audio, pts=pts, time_base=time_base), marks


class ShiftSwapper:
    """A test double for a trained model: shifts colours and returns a full mask (tests only)."""

    def __init__(self, resolution: int = 64, face_type: str = "full") -> None:
        self.resolution = resolution
        self.face_type = face_type
        self.calls = 0

    def swap(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.calls += len(faces)
        out = np.clip(faces[..., ::-1] * 0.9 + 0.05, 0, 1).astype(np.float32)  # swap R and B
        return out, np.ones((*faces.shape[:3], 1), np.float32)


def add_clip(ws: Workspace, clip: Path, marks: dict[int, np.ndarray], identity: str = "bob", *,
             frame_count: int | None = None) -> None:
    """Register ``clip`` with ``identity``'s faces at ``marks`` (as extraction would have); ``frame_count``
    frames are recorded (default: the clip's)."""
    from doppel.io.video import probe

    info = probe(clip)
    frame_count = info.frame_count if frame_count is None else frame_count
    clip_id = ws.clips.add(NewClip(path=str(clip), content_hash=content_hash(clip), kind="video", width=info.width,
                                   height=info.height, fps=info.fps, frame_count=info.frame_count,
                                   duration=info.duration, has_audio=info.has_audio))
    faces = [NewFace(track_key=None, frame_index=i, time=i / 25, bbox=(*lm.min(0), *lm.max(0)), det_score=1.0,
                     landmarks=lm, landmarks_smooth=lm, landmark_score=0.9, yaw=0.0, pitch=0.0, roll=0.0, blur=100.0,
                     embedding=None, transform=estimate_transform(lm, 256, "full"), face_type="full", size=256,
                     aligned_rel=f"facesets/{identity}/{clip_id}_{i:06d}.png") for i, lm in marks.items()]
    frames = [(i, i / 25, "face" if i in marks else "no_face") for i in range(frame_count)]
    ws.faces.replace_clip(identity, clip_id, [], faces, frames)


def setup_workspace(root: Path, clip: Path, marks: dict[int, np.ndarray], *, frame_count: int,
                    consent: bool = True, model_name: str = "m1", resolution: int = 64) -> Workspace:
    """A workspace with the clip, faces of 'bob' on it, a model 'm1' alice->bob, and alice's consent."""
    from doppel.provenance.consent import add_consent

    ws = create_workspace(root)
    ws.identities.ensure("alice")
    ws.identities.ensure("bob")
    if consent:
        add_consent(ws, "alice", "Alice Example", "tests", "public-domain-demo")
    (ws.models_dir() / model_name).mkdir()
    (ws.models_dir() / model_name / "config.json").write_text("{}")
    add_clip(ws, clip, marks, frame_count=frame_count)
    ws.models.register(model_name, folder_rel=f"models/{model_name}", arch="test", preset="cpu",
                       resolution=resolution, face_type="full", src="alice", dst="bob", base=None, step=100)
    return ws
