"""Cutting shots into chunks of frames that merge apart and join with no seam.

A chunk's frames come out exactly as in a run from the shot's start when its run-up (frames merged for
their state only, not written) begins at a frame after which the compositor forgets everything before
(:meth:`~doppel.merge.stages.Compositor.forgets_before`: a frame without the person, a kept frame, a frame
without smoothing). So a boundary is put just after such a frame where one lies near the nominal
boundary, with a run-up of that one frame. Elsewhere the run-up is long enough for the temporal
smoothers to forget their start (:meth:`~doppel.merge.composite.TemporalState.memory`, 33 frames at the
default weights): the first difference then weighs less than 1e-5, far below one 8-bit level. A
boundary whose run-up would cost more than half the chunk is dropped (the chunks on either side merge).
Shot cuts need no planning: the cut detector only compares a frame with the one before, which every
run-up includes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Container, Sequence

from doppel.merge.chunk import FrameRange
from doppel.merge.composite import TemporalState
from doppel.merge.settings import FrameSettings
from doppel.merge.stages import Compositor

MIN_CHUNK = 300  # frames: shorter chunks pay too much for their run-up (33 frames at the default smoothing)
CHUNKS_PER_WORKER = 2  # automatic chunking aims at this many chunks per worker over the whole batch
SEARCH = 4  # a natural boundary is looked for within a quarter of the chunk either side of the nominal one


def chunk_size(frame_counts: Sequence[int], workers: int, chunk_frames: int = 0) -> int:
    """Frames per chunk: ``chunk_frames`` when given, else enough chunks over the batch to keep ``workers``
    busy (``CHUNKS_PER_WORKER`` each) without cutting finer than ``MIN_CHUNK``. A shot shorter than one and a
    half chunks stays whole; a batch of many shots is spread by shot."""
    if chunk_frames > 0:
        return chunk_frames
    total = sum(frame_counts)
    if workers <= 1 or not total:
        return max(total, 1)
    return max(MIN_CHUNK, math.ceil(total / (workers * CHUNKS_PER_WORKER)))


def plan_shot(frame_count: int, faces: Container[int], settings: FrameSettings, size: int) -> list[FrameRange]:
    """The chunks of a shot of ``frame_count`` frames whose person is in frames ``faces``, ``size`` frames
    each (about), in order, covering every frame once."""
    if frame_count <= 0:
        return []
    if frame_count < size * 3 // 2:
        return [FrameRange(0, frame_count)]
    memory = _memory(frame_count, settings)

    def forgets(f: int) -> bool:
        return Compositor.forgets_before(f in faces, settings.at(f))

    cuts: list[tuple[int, int]] = [(0, 0)]  # (first frame written, run-up) of each chunk
    nominal = size
    while nominal < frame_count - size // 2:
        start = cuts[-1][0]
        boundary, warmup = _boundary(nominal, start, size, memory, forgets)
        if warmup > 1 and warmup > size // 2:
            nominal += size  # the run-up would cost too much here: take the next boundary instead
            continue
        cuts.append((boundary, warmup))
        nominal = boundary + size
    ends = [c[0] for c in cuts[1:]] + [frame_count]
    return [FrameRange(start, stop, warmup) for (start, warmup), stop in zip(cuts, ends, strict=True)]


def _memory(frame_count: int, settings: FrameSettings) -> int:
    """The longest run-up any frame's settings need."""
    seen = {id(settings.at(f)): settings.at(f) for f in range(frame_count)} if settings.overrides else {
        0: settings.base}
    return max(TemporalState.memory(s) for s in seen.values())


def _boundary(nominal: int, start: int, size: int, memory: int,
              forgets: Callable[[int], bool]) -> tuple[int, int]:
    """Where to cut near ``nominal`` and the run-up the chunk starting there needs."""
    reach = max(1, size // SEARCH)
    for offset in range(reach + 1):  # nearest natural boundary first, earlier before later
        for f in (nominal - 1 - offset, nominal - 1 + offset):
            if start < f + 1 < nominal + reach and forgets(f):
                return f + 1, 1
    # none near: a full run-up, shortened where a forgetting frame lies inside it
    run_up = max(1, memory)
    for f in range(nominal - 1, max(0, nominal - run_up) - 1, -1):
        if forgets(f):
            return nominal, nominal - f
    return nominal, min(run_up, nominal)
