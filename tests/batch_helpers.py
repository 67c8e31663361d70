"""Shared helpers for the batch tests: a workspace with several synthetic shots of 'bob' and a model
'm1' alice->bob, a job file for them, swapper loaders for workers (the test double of
test_merge_helpers, optionally slowed down), and a decoded-frames comparison. (No tests in here.)"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import av
import numpy as np

from doppel.batch.jobfile import JobFile
from doppel.io.video import read_frames
from doppel.store import Workspace
from doppel.store.records import ModelRecord
from doppel.workflow.merge import MergeRequest, merge
from test_merge_helpers import ShiftSwapper, add_clip, face_clip, setup_workspace


def shots_workspace(root: Path, lengths: list[int], *, absent: dict[int, tuple[int, ...]] | None = None,
                    cut_at: dict[int, int] | None = None
                    ) -> tuple[Workspace, list[Path], list[dict[int, np.ndarray]]]:
    """A workspace at ``root/ws`` with one synthetic clip per length (``root/shotK.mp4``, faces of bob on every
    frame but ``absent[K]``, a shot cut at ``cut_at[K]``), and model m1 alice->bob with alice's consent.
    Returns it, the clips and their landmarks by frame."""
    clips = []
    for k, n in enumerate(lengths):
        clip, marks = face_clip(root / f"shot{k}.mp4", n, seed=k, absent=(absent or {}).get(k, ()),
                                cut_at=(cut_at or {}).get(k))
        clips.append((clip, marks))
    ws = setup_workspace(root / "ws", clips[0][0], clips[0][1], frame_count=lengths[0])
    for clip, marks in clips[1:]:
        add_clip(ws, clip, marks)
    return ws, [c for c, _ in clips], [m for _, m in clips]


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


def merged_alone(ws: Workspace, job: JobFile, folder: Path) -> dict[str, Path]:
    """Each shot of ``job`` merged on its own as ``doppel merge`` does (the test double as the model), kept as
    ``folder/NAME.mp4``. The outputs and the inference cache are then removed: a batch of the same shots
    resumes the same renders (same watermark payload) and must compute every frame again."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for shot in job.shots:
        merge(ws, MergeRequest(input=shot.input, output=shot.output, model=shot.model, settings=shot.settings,
                               overrides=shot.overrides, crf=shot.crf, preset=shot.preset),
              swapper=ShiftSwapper())
        out[shot.name] = folder / f"{shot.name}.mp4"
        shutil.move(shot.output, out[shot.name])
        shot.output.with_suffix(".c2pa").unlink()
    shutil.rmtree(ws.renders_dir() / "cache")
    return out


def packets(path: Path, kind: str) -> list[tuple[int | None, int]]:
    with av.open(str(path)) as c:
        stream = c.streams.video[0] if kind == "video" else c.streams.audio[0]
        return sorted((p.pts, p.size) for p in c.demux(stream) if p.size)


def assert_same_as_alone(output: Path, alone: Path, *, min_psnr: float = 50.0) -> None:
    """The batch's output against the shot merged alone: frames (lossless encodes, same watermark payload: what
    differs is what compositing did), count, timing and audio packets."""
    a, b = frames_of(alone), frames_of(output)
    assert len(a) == len(b)
    worst = min(psnr(x, y) for x, y in zip(a, b, strict=True))
    assert worst >= min_psnr, worst
    assert times_of(output) == times_of(alone)
    assert packets(output, "audio") == packets(alone, "audio")


def flicker_by_frame(original: Path, output: Path, marks: dict[int, np.ndarray]) -> dict[int, float]:
    """Per frame ``t`` with a face in ``t-1`` and ``t``: mean output change over mean input change in the face
    region (merge's flicker measure, one pair at a time)."""
    from doppel.merge.temporal import FlickerMeter, face_region

    inp, out = frames_of(original), frames_of(output)
    ratios = {}
    for t in range(1, len(inp)):
        if t in marks and t - 1 in marks:
            meter = FlickerMeter()
            for k in (t - 1, t):
                meter.update(inp[k], out[k], face_region(marks[k], inp[k].shape))
            ratios[t] = meter.output_change[0] / max(meter.input_change[0], 1e-6)
    return ratios
