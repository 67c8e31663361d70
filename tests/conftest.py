"""Shared fixtures: synthetic clips built on the fly (no downloads, nothing large committed)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

SHARED_MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media"


def shared_clip(name: str) -> Path:
    """A clip from ../shared/media, or skip the test when the shared folder is absent."""
    path = SHARED_MEDIA / name
    if not path.exists():
        pytest.skip(f"needs {path} (../shared/media is absent)")
    return path


def make_clip(path: Path, frames: list[np.ndarray], *, fps: int = 25, audio: bool = True,
              pts: list[int] | None = None, time_base: Fraction | None = None,
              audio_codec: str = "aac") -> Path:
    """Encode RGB frames (and a 440 Hz tone) with PyAV; ``pts`` in ``time_base`` allows VFR clips."""
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.options = {"crf": "10", "preset": "ultrafast"}
        tb = time_base or Fraction(1, fps)
        vs.codec_context.time_base = tb
        a_s = out.add_stream(audio_codec, rate=48000) if audio else None
        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = pts[i] if pts is not None else i
            frame.time_base = tb
            for packet in vs.encode(frame):
                out.mux(packet)
        for packet in vs.encode(None):
            out.mux(packet)
        if a_s is not None:
            seconds = len(frames) / fps
            n = int(48000 * seconds)
            tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(n) / 48000)).astype(np.float32)
            for start in range(0, n, 1024):
                chunk = tone[start:start + 1024][None, :]
                if audio_codec.startswith("pcm_s16"):
                    chunk = (chunk * 32767).astype(np.int16)
                fmt = "s16" if audio_codec.startswith("pcm_s16") else "fltp"
                af = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format=fmt, layout="mono")
                af.sample_rate = 48000
                af.pts = start
                for packet in a_s.encode(af):
                    out.mux(packet)
            for packet in a_s.encode(None):
                out.mux(packet)
    return path


def noise_frames(n: int, h: int = 96, w: int = 128, seed: int = 0) -> list[np.ndarray]:
    """Smoothly varying frames with no face in them."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (h // 8, w // 8, 3), dtype=np.uint8)
    out = []
    for i in range(n):
        img = np.kron(base, np.ones((8, 8, 1), dtype=np.uint8))
        out.append(np.ascontiguousarray(np.roll(img, i * 2, axis=1)))
    return out


@pytest.fixture
def noface_clip(tmp_path: Path) -> Path:
    return make_clip(tmp_path / "noface.mp4", noise_frames(20))


@contextlib.contextmanager
def raw_db(ws: Any) -> Iterator[sqlite3.Connection]:
    """A plain connection to a workspace's database, for test fixtures and checks that need SQL the
    store does not offer (rows as :class:`sqlite3.Row`; commits when the block ends without error)."""
    from doppel.store import DB_NAME

    conn = sqlite3.connect(Path(ws.root) / DB_NAME, timeout=30)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    try:
        with conn:
            yield conn
    finally:
        conn.close()


class Rows(list):  # type: ignore[type-arg]
    """Query results that read like a cursor's."""

    def fetchone(self) -> Any:
        return self[0] if self else None

    def fetchall(self) -> list[Any]:
        return list(self)


def query(ws: Any, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> Rows:
    """Run one SQL statement on a workspace's database (tests only) and return its rows."""
    with raw_db(ws) as conn:
        return Rows(conn.execute(sql, args).fetchall())
