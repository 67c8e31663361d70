"""Merge one range of a clip's frames into a video-only chunk: the unit of work of a batch on many machines.

A chunk is frames ``start..stop-1`` of a shot, run through merge's own stages (decode, align + batched
inference, the :class:`~doppel.merge.stages.Compositor`, the watermark) after a run-up of ``warmup`` frames
before ``start`` that only bring the shot-cut and temporal state to where a run from the shot's start has
it (see :meth:`Compositor.forgets_before` and :meth:`TemporalState.memory` for how long that must be). The
chunk is encoded with the frames' own timestamps and no audio, starting on a keyframe, so that chunks
join end to end by stream copy (:func:`doppel.io.remux.join_video`). It carries the render's watermark
in every frame; content credentials belong to the joined file, not to a chunk.

Nothing here knows where it runs: a test, a worker process, another machine.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from doppel.core.errors import InputError
from doppel.core.progress import ProgressFn, no_progress
from doppel.io.video import VideoInfo
from doppel.io.writer import VideoWriter
from doppel.merge.stages import END, Pipe, RunContext, composite_stage, decode_stage, guard, infer_stage
from doppel.merge.temporal import FlickerMeter
from doppel.store.records import FrameRow


@dataclass(frozen=True)
class FrameRange:
    """Frames ``start..stop-1`` written, after ``warmup`` frames before ``start`` run but not written."""

    start: int
    stop: int
    warmup: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.start - self.warmup <= self.start < self.stop:
            raise ValueError(f"bad frame range {self.start}..{self.stop} with a run-up of {self.warmup}")

    @property
    def first(self) -> int:
        """The first frame decoded (the run-up's start)."""
        return self.start - self.warmup

    @property
    def frames(self) -> int:
        return self.stop - self.start


@dataclass
class ChunkReport:
    """What merging a chunk did: a row per written frame, the flicker measured on its frames (the pair
    across ``start`` included), busy seconds per stage and inference cache use."""

    start: int
    stop: int
    rows: list[FrameRow] = field(default_factory=list)
    input_change: list[float] = field(default_factory=list)
    output_change: list[float] = field(default_factory=list)
    stages: dict[str, float] = field(default_factory=dict)
    cache_hits: int = 0
    cache_misses: int = 0
    seconds: float = 0.0


def run_chunk(ctx: RunContext, info: VideoInfo, source: Path, frames: FrameRange, output: Path, *,
              crf: int = 18, preset: str = "veryfast", progress: ProgressFn = no_progress) -> ChunkReport:
    """Merge ``frames`` of ``source`` with ``ctx`` into ``output`` (H.264, no audio; written atomically).
    ``progress`` counts written frames of this chunk."""
    if frames.stop > info.frame_count:
        raise InputError(f"frames {frames.start}..{frames.stop - 1} are beyond the clip's {info.frame_count}",
                         path=source)
    started = time.perf_counter()
    report = ChunkReport(frames.start, frames.stop)
    decoded, inferred, composed = Pipe(ctx.stop), Pipe(ctx.stop), Pipe(ctx.stop)
    flicker = FlickerMeter()
    threads = [
        threading.Thread(target=guard(ctx, decode_stage, source, decoded, frames.first, frames.stop),
                         name="chunk-decode", daemon=True),
        threading.Thread(target=guard(ctx, infer_stage, decoded, inferred), name="chunk-infer", daemon=True),
        threading.Thread(target=guard(ctx, composite_stage, inferred, composed, flicker, frames.start),
                         name="chunk-composite", daemon=True),
    ]
    try:
        with VideoWriter(output, width=info.width, height=info.height, fps=info.fps, time_base=info.time_base,
                         crf=crf, preset=preset) as writer:
            for t in threads:
                t.start()
            while True:
                item = composed.get()
                if item is END or ctx.errors:
                    break
                t0 = time.perf_counter()
                assert item.output is not None
                # the source's own timestamps (an image sequence's are its frame numbers), so chunks join in time
                writer.write(item.output, item.frame.pts if item.frame.pts is not None else item.frame.index)
                ctx.stages.add("encode", time.perf_counter() - t0)
                report.rows.append(FrameRow(item.frame.index, item.status, item.occlusion, item.shot_cut))
                progress(len(report.rows), frames.frames)
            if ctx.errors:
                raise ctx.errors[0]
            if len(report.rows) != frames.frames:
                raise InputError(f"decoded {len(report.rows)} frames of {frames.start}..{frames.stop - 1}, "
                                 f"expected {frames.frames}", path=source)
    finally:
        ctx.stop.set()
        for t in threads:
            t.join(timeout=10)
    report.input_change, report.output_change = flicker.input_change, flicker.output_change
    report.stages = {k: round(v, 3) for k, v in sorted(ctx.stages.seconds.items())}
    report.cache_hits = sum(p.cache.hits for p in ctx.people())
    report.cache_misses = sum(p.cache.misses for p in ctx.people())
    report.seconds = time.perf_counter() - started
    return report
