"""Shared helpers for the batch tests: a workspace with several synthetic shots of 'bob' and a model
'm1' alice->bob, a job file for them, swapper loaders for workers (the test double of
test_merge_helpers, optionally slowed down), and a decoded-frames comparison. (No tests in here.)"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from doppel.extract.config import content_hash
from doppel.io.video import probe, read_frames
from doppel.ops.align import estimate_transform
from doppel.store import Workspace
from doppel.store.records import ModelRecord, NewClip, NewFace
from test_merge_helpers import ShiftSwapper, face_clip, setup_workspace


def add_clip(ws: Workspace, clip: Path, marks: dict[int, np.ndarray], identity: str = "bob") -> None:
    """Register ``clip`` with ``identity``'s faces at ``marks`` (as extraction would have)."""
    info = probe(clip)
    clip_id = ws.clips.add(NewClip(path=str(clip), content_hash=content_hash(clip), kind="video", width=info.width,
                                   height=info.height, fps=info.fps, frame_count=info.frame_count,
                                   duration=info.duration, has_audio=info.has_audio))
    faces = [NewFace(track_key=None, frame_index=i, time=i / 25, bbox=(*lm.min(0), *lm.max(0)), det_score=1.0,
                     landmarks=lm, landmarks_smooth=lm, landmark_score=0.9, yaw=0.0, pitch=0.0, roll=0.0, blur=100.0,
                     embedding=None, transform=estimate_transform(lm, 256, "full"), face_type="full", size=256,
                     aligned_rel=f"facesets/{identity}/{clip_id}_{i:06d}.png") for i, lm in marks.items()]
    frames = [(i, i / 25, "face" if i in marks else "no_face") for i in range(info.frame_count)]
    ws.faces.replace_clip(identity, clip_id, [], faces, frames)


def shots_workspace(root: Path, lengths: list[int], *, absent: dict[int, tuple[int, ...]] | None = None,
                    cut_at: dict[int, int] | None = None) -> tuple[Workspace, list[Path]]:
    """A workspace at ``root/ws`` with one synthetic clip per length (``root/shotK.mp4``, faces of bob on every
    frame but ``absent[K]``, a shot cut at ``cut_at[K]``), and model m1 alice->bob with alice's consent."""
    clips = []
    for k, n in enumerate(lengths):
        clip, marks = face_clip(root / f"shot{k}.mp4", n, seed=k, absent=(absent or {}).get(k, ()),
                                cut_at=(cut_at or {}).get(k))
        clips.append((clip, marks))
    ws = setup_workspace(root / "ws", clips[0][0], clips[0][1], frame_count=lengths[0])
    for clip, marks in clips[1:]:
        add_clip(ws, clip, marks)
    return ws, [c for c, _ in clips]


def write_jobfile(path: Path, clips: list[Path], *, extra: str = "", defaults: str = "", crf: int = 0) -> Path:
    """A job file with one shot per clip, ``shotK`` -> ``out/shotK.mp4`` (lossless by default, so outputs compare
    exactly)."""
    text = f'[defaults]\nmodel = "m1"\ncrf = {crf}\n{defaults}\n'
    for k, clip in enumerate(clips):
        text += f'\n[[shot]]\nname = "shot{k}"\ninput = "{clip}"\noutput = "out/shot{k}.mp4"\n'
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.parent / "out").mkdir(exist_ok=True)
    path.write_text(text + extra)
    return path


def shift_loader(model: ModelRecord) -> ShiftSwapper:
    """Loads the test double instead of a trained network (what a worker calls once per model)."""
    return ShiftSwapper(resolution=model.resolution, face_type=model.face_type)


class SlowShift(ShiftSwapper):
    """The test double, ``delay`` seconds per batch: slow enough to kill a worker in the middle of a shot."""

    delay = 0.15

    def swap(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        time.sleep(self.delay)
        return super().swap(faces)


def slow_loader(model: ModelRecord) -> SlowShift:
    return SlowShift(resolution=model.resolution, face_type=model.face_type)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float(10 * np.log10(255**2 / max(mse, 1e-10)))


def frames_of(path: Path) -> list[np.ndarray]:
    return [f.image for f in read_frames(path)]


def times_of(path: Path) -> list[float]:
    return [f.time for f in read_frames(path)]
