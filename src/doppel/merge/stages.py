"""The merge's stages and what flows between them: decode, align + batched inference, composite.

Each stage is a function run in its own thread (see :mod:`doppel.merge.pipeline`), joined to the
next by a bounded :class:`Pipe`; :class:`Compositor` is the sequential, stateful part (shot cuts,
temporal smoothing) that the review app's re-rendering reuses. Long because the stages, the work
items and the run context they share (one person or several per frame) are read together.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from doppel.core.errors import InputError
from doppel.core.swap import Swapper, output_resolution
from doppel.io.video import Frame, read_frames
from doppel.merge.bridge import MIN_VISIBLE, is_bridged
from doppel.merge.cache import InferenceCache
from doppel.merge.composite import (
    FaceResult,
    TemporalState,
    Visible,
    blend_into,
    deep_output,
    layer_frame,
    prepare_face,
)
from doppel.merge.layers import write_layers
from doppel.merge.provenance import Provenance
from doppel.merge.settings import FrameSettings, MergeSettings
from doppel.merge.temporal import FlickerMeter, Region, ShotCutDetector, face_region
from doppel.ops.align import estimate_transform, transform_points
from doppel.ops.resample import cut_face, scaled_crop
from doppel.segment.crops import to_crop
from doppel.segment.labels import lifted_hull
from doppel.store.records import FaceRecord, ModelRecord

if TYPE_CHECKING:
    from doppel.segment.segmenter import Segmenter

QUEUE_FRAMES = 16  # frames buffered between two stages

@dataclass(frozen=True)
class Destination:
    """The destination person's faces in the clip being merged."""

    clip_id: int
    clip_hash: str
    identity: str
    faces: dict[int, FaceRecord]  # frame index -> face (frames without one pass through)


# -- work items passed between stages -------------------------------------------------------------
@dataclass
class WorkItem:
    frame: Frame
    settings: MergeSettings
    face: FaceRecord | None = None
    transform: np.ndarray | None = None  # frame -> crop at the model's resolution
    landmarks: np.ndarray | None = None  # in crop pixels
    crop: np.ndarray | None = None  # float32 (S, S, 3) for inference
    swapped: np.ndarray | None = None
    learned: np.ndarray | None = None
    seg_crop: np.ndarray | None = None  # uint8 (s, s, 3): the plate in the segmenter's framing
    seg_matrix: np.ndarray | None = None  # frame -> segmenter crop
    visible: Visible | None = None  # the segmenter's masks, moved into the swap's crop
    cached: bool = False
    output: np.ndarray | None = None
    output16: np.ndarray | None = None  # uint16 (H, W, 3), when the plate and the output are deeper than 8 bits
    layer: np.ndarray | None = None  # uint16 (H, W, 4): the output with the face's matte as alpha (a layers video)
    status: str = "passthrough"
    occlusion: float | None = None
    uncertainty: float | None = None
    leak: float | None = None
    shot_cut: bool = False
    face_region: Region | None = None  # the face's landmark hull in the frame
    person: int = 0  # whose face: 0 = the run's own model and destination, k = ``RunContext.others[k - 1]``
    matte: np.ndarray | None = None  # uint8 (H, W): this person's matte, for k >= 1 when the compositor keeps them
    others: list[WorkItem] = field(default_factory=list)  # the other people's items on this frame (person 0's)

    def everyone(self) -> list[WorkItem]:
        """This item and the other people's on the same frame, in compositing order."""
        return [self, *self.others]


END = object()


class StageTimer:
    """Busy seconds per stage (time inside the stage's work, not waiting on a queue)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, name: str, seconds: float) -> None:
        with self._lock:
            self.seconds[name] = self.seconds.get(name, 0.0) + seconds


class Pipe:
    """A bounded queue whose put/get give up when the run is stopping."""

    def __init__(self, stop: threading.Event) -> None:
        self.q: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_FRAMES)
        self.stop = stop

    def put(self, item: Any) -> None:
        while not self.stop.is_set():
            try:
                self.q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def get(self) -> Any:
        while not self.stop.is_set():
            try:
                return self.q.get(timeout=0.1)
            except queue.Empty:
                continue
        return END


def crop_transform(face: FaceRecord, resolution: int, face_type: str) -> np.ndarray:
    """Frame -> crop transform at the model's resolution, from the face's smoothed alignment."""
    if face.face_type == face_type:
        return face.transform * (resolution / face.size)
    return estimate_transform(face.landmarks_smooth, resolution, face_type)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Person:
    """Who a run swaps: a model, the destination person's faces it replaces, its inference cache."""

    swapper: Swapper
    model: ModelRecord
    dest: Destination
    cache: InferenceCache


@dataclass
class RunContext:
    """Everything the stages share for one run (read-only once the run starts). The run's own model and
    destination are its first person; ``others`` are composited after it, in order, in the same pass."""

    swapper: Swapper
    model: ModelRecord
    dest: Destination
    frame_settings: FrameSettings
    cache: InferenceCache
    provenance: Provenance
    layers: Path | None
    batch: int
    stages: StageTimer
    stop: threading.Event
    errors: list[BaseException] = field(default_factory=list)
    segmenter: Segmenter | None = None  # the face segmenter, for frames set to occlusion=segment
    layer_files: list[Path] = field(default_factory=list)  # written by the compositor, sealed at the end
    deep: bool = False  # decode 16-bit and composite a 16-bit output (a 10/16-bit plate into a 10/16-bit output)
    fps: Fraction | None = None  # an image-sequence input's frame rate
    others: list[Person] = field(default_factory=list)  # more people swapped in the same pass

    def person(self, k: int) -> Person:
        return Person(self.swapper, self.model, self.dest, self.cache) if k == 0 else self.others[k - 1]

    def people(self) -> list[Person]:
        return [self.person(k) for k in range(1 + len(self.others))]

    @property
    def layers_video(self) -> bool:
        """Layers as one RGBA video (ProRes 4444 in .mov) rather than a folder of per-frame files."""
        return self.layers is not None and self.layers.suffix.lower() == ".mov"


def guard(ctx: RunContext, fn: Callable[..., None], *args: Any) -> Callable[[], None]:
    def run() -> None:
        try:
            fn(ctx, *args)
        except BaseException as exc:
            ctx.errors.append(exc)
            ctx.stop.set()

    return run


# -- stage 1: decode ------------------------------------------------------------------------------
def decode_stage(ctx: RunContext, path: Path, out: Pipe, start: int = 0, stop: int | None = None) -> None:
    frames = read_frames(path, depth=16 if ctx.deep else 8, fps=ctx.fps, start=start, stop=stop)
    while not ctx.stop.is_set():
        t0 = time.perf_counter()
        frame = next(frames, None)
        ctx.stages.add("decode", time.perf_counter() - t0)
        if frame is None:
            break
        out.put(frame)
    out.put(END)


# -- stage 2: align and batched inference -----------------------------------------------------------
def prepare_item(ctx: RunContext, frame: Frame) -> WorkItem:
    """The frame's work item (the first person's), with one item per other person in ``others``."""
    item = _prepare(ctx, frame, 0)
    item.others = [_prepare(ctx, frame, k) for k in range(1, 1 + len(ctx.others))]
    return item


def _prepare(ctx: RunContext, frame: Frame, k: int) -> WorkItem:
    who = ctx.person(k)
    s = ctx.frame_settings.at(frame.index)
    item = WorkItem(frame, s, face=who.dest.faces.get(frame.index), person=k)
    if is_bridged(item.face) and (ctx.segmenter is None or s.occlusion != "segment"):
        item.face = None  # nothing would tell whether a face is there at all
    if item.face is None:
        return item
    if s.keep_original:
        item.status = "kept"
        return item
    out_res = output_resolution(who.swapper)
    item.transform = crop_transform(item.face, out_res, who.swapper.face_type)  # at the returned face's size
    item.landmarks = transform_points(item.face.landmarks_smooth, item.transform)
    item.status = "swapped"
    if ctx.segmenter is not None and s.occlusion == "segment":
        t0 = time.perf_counter()
        item.seg_crop, item.seg_matrix = ctx.segmenter.crop_of(frame.image, item.face.landmarks_smooth)
        ctx.stages.add("align", time.perf_counter() - t0)
    if not is_bridged(item.face):  # a bridged face waits for the segmenter's word (run_segmenter)
        _cached_or_crop(ctx, item)
    return item


def _cached_or_crop(ctx: RunContext, item: WorkItem) -> None:
    """The item's swap from the inference cache, or else its crop for the model."""
    who, frame = ctx.person(item.person), item.frame
    res, out_res = who.swapper.resolution, output_resolution(who.swapper)
    assert item.transform is not None
    t0 = time.perf_counter()
    hit = who.cache.get(frame.index, item.transform)
    ctx.stages.add("cache", time.perf_counter() - t0)
    if hit is not None:
        item.swapped, item.learned = hit
        item.cached = True
        return
    t0 = time.perf_counter()
    # the model's input: the same crop at its own resolution, pixel centres lined up with the returned face's
    item.crop = cut_face(frame.image, scaled_crop(item.transform, res / out_res), res).astype(np.float32) / 255.0
    ctx.stages.add("align", time.perf_counter() - t0)


def run_batch(ctx: RunContext, batch: list[WorkItem]) -> None:
    """Inference for one person's items (``batch[0].person``)."""
    who = ctx.person(batch[0].person)
    faces = np.stack([it.crop for it in batch])  # type: ignore[misc]
    t0 = time.perf_counter()
    swapped, masks = who.swapper.swap(faces)
    ctx.stages.add("infer", time.perf_counter() - t0)
    n, s = len(batch), output_resolution(who.swapper)
    if swapped.shape != (n, s, s, 3) or masks.shape[:3] != (n, s, s):
        raise InputError(f"model returned faces {swapped.shape} and masks {masks.shape}, expected "
                         f"({n}, {s}, {s}, 3) and ({n}, {s}, {s}, 1)", path=who.model.path)
    t0 = time.perf_counter()
    for i, it in enumerate(batch):
        it.swapped = np.clip(swapped[i].astype(np.float32), 0.0, 1.0)
        it.learned = np.clip(masks[i].reshape(s, s).astype(np.float32), 0.0, 1.0)
        it.crop = None
        who.cache.put(it.frame.index, it.transform, it.swapped, it.learned)  # type: ignore[arg-type]
    ctx.stages.add("cache", time.perf_counter() - t0)


def run_segmenter(ctx: RunContext, batch: list[WorkItem]) -> None:
    """The segmenter on the plates of ``batch``; each item's masks moved into its swap crop."""
    assert ctx.segmenter is not None
    t0 = time.perf_counter()
    masks = ctx.segmenter.predict(np.stack([it.seg_crop for it in batch]))  # type: ignore[misc]
    ctx.stages.add("segment", time.perf_counter() - t0)
    for i, it in enumerate(batch):
        res = output_resolution(ctx.person(it.person).swapper)  # the size of the face the masks go with
        assert it.seg_matrix is not None and it.transform is not None
        it.visible = Visible(to_crop(masks.face[i], it.seg_matrix, it.transform, res, outside=1.0),
                             to_crop(masks.glasses[i], it.seg_matrix, it.transform, res, outside=0.0))
        it.seg_crop = None
        if is_bridged(it.face) and it.landmarks is not None:
            core = lifted_hull(it.landmarks, res, 0.0)
            if float((core * it.visible.face).sum()) < MIN_VISIBLE * max(float(core.sum()), 1.0):
                it.face, it.visible, it.status = None, None, "passthrough"  # no face here, hidden or not
            else:
                _cached_or_crop(ctx, it)


def infer_items(ctx: RunContext, items: list[WorkItem]) -> None:
    """Batched inference for the items that need it: the segmenter (which may find a bridged face absent:
    no swap for it then), then each person's swap model."""
    every = [one for it in items for one in it.everyone()]
    seg = [it for it in every if it.seg_crop is not None]
    for start in range(0, len(seg), max(ctx.batch, 16)):
        run_segmenter(ctx, seg[start:start + max(ctx.batch, 16)])
    for k in range(1 + len(ctx.others)):
        todo = [it for it in every if it.crop is not None and it.person == k]
        for start in range(0, len(todo), ctx.batch):
            run_batch(ctx, todo[start:start + ctx.batch])


def infer_stage(ctx: RunContext, inp: Pipe, out: Pipe) -> None:
    pending: list[WorkItem] = []  # in frame order; some wait for inference

    def flush() -> None:
        infer_items(ctx, pending)
        for it in pending:
            out.put(it)
        pending.clear()

    while True:
        frame = inp.get()
        if frame is END:
            break
        item = prepare_item(ctx, frame)
        pending.append(item)
        waiting = sum(1 for it in pending for one in it.everyone() if one.crop is not None or one.seg_crop is not None)
        if waiting == 0 or waiting >= ctx.batch or len(pending) >= QUEUE_FRAMES * 2:
            flush()
    flush()
    out.put(END)


# -- stage 3: mask, colour, occlusion, blend, watermark, layers ----------------------------------------
class Compositor:
    """The sequential part of the merge: frames in order, with shot cuts and temporal state."""

    @staticmethod
    def forgets_before(has_face: bool, settings: MergeSettings) -> bool:
        """Whether what the compositor makes of the frames *after* this one depends on this frame and later
        ones only: true of a frame it does not swap (no face, or kept: the next swapped frame starts its
        temporal state afresh) and of a swapped frame without smoothing (it resets the state). A run-up
        that starts at such a frame gives the following frames exactly as a run from the clip's start."""
        return not has_face or settings.keep_original or not settings.smoothing

    def __init__(self, ctx: RunContext, *, person_mattes: bool = False) -> None:
        """``person_mattes``: also fill each other person's ``WorkItem.matte`` (review measures every person;
        a merge needs only the first person's)."""
        self.ctx, self.person_mattes = ctx, person_mattes
        n = 1 + len(ctx.others)
        self.states = [TemporalState() for _ in range(n)]  # each person's smoothing runs on its own
        self.cuts = ShotCutDetector()
        self.previous_swapped = [False] * n

    def process(self, item: WorkItem, *, warmup: bool = False) -> np.ndarray | None:
        """Fill ``item.output`` (watermarked), its occlusion and cut flags and ``item.face_region`` (the
        landmark hull in the frame, where flicker is measured). Returns the frame's matte (uint8 ``(H, W)``,
        255 = all swap) for a swapped frame, else None. A ``warmup`` frame only brings the
        shot-cut and temporal state up to date (a chunk's run-up): no layers, no watermark. The other
        people's faces (``item.others``) are composited after the first, each over what came before;
        the matte, flicker region and occlusion are the first person's; layers and a deep output have everyone's."""
        ctx, t0 = self.ctx, time.perf_counter()
        frame, s = item.frame, item.settings
        item.shot_cut = self.cuts.update(frame.image, s.shot_cut_threshold)
        region = None
        res: FaceResult | None = None
        results: list[tuple[int, FaceResult]] = []  # every swapped person's face, in compositing order
        output = frame.image
        for one in item.everyone():
            k = one.person
            one.shot_cut = item.shot_cut
            if one.status == "swapped":
                if item.shot_cut or not self.previous_swapped[k]:
                    self.states[k].reset()
                assert one.transform is not None and one.swapped is not None and one.learned is not None
                assert one.landmarks is not None
                got = prepare_face(frame.image, one.transform, one.swapped, one.learned, one.landmarks,
                                   one.face.landmark_score if one.face else None, s, self.states[k], one.visible)
                output = blend_into(output, got, s)
                one.occlusion, one.uncertainty, one.leak = got.occlusion, got.uncertainty, got.leak
                results.append((k, got))
                if k == 0:
                    res = got
                elif self.person_mattes:
                    one.matte = _frame_region(got, frame.image.shape[:2])
            self.previous_swapped[k] = one.status == "swapped"
        item.output = output
        if res is not None:
            region = _frame_region(res, frame.image.shape[:2])
        if ctx.layers is not None and not ctx.layers_video and not warmup and results:
            t1 = time.perf_counter()
            for k, got in results:
                ctx.layer_files += write_layers(
                    layers_folder(ctx, k), frame.index, got.face, got.matte, got.transform,
                    (frame.image.shape[1], frame.image.shape[0]), got.occlusion, ctx.provenance.mark_face,
                    {"render_uid": ctx.provenance.uid, "watermark_payload": ctx.provenance.payload,
                     "model": ctx.person(k).model.name})
            ctx.stages.add("layers", time.perf_counter() - t1)
            t0 += time.perf_counter() - t1
        if item.face is not None:
            item.face_region = face_region(item.face.landmarks_smooth, frame.image.shape)
        t1 = time.perf_counter()
        ctx.stages.add("composite", t1 - t0)
        for one in item.everyone():
            one.swapped = one.learned = None
            one.visible = None
        if warmup:  # a run-up frame: only the state it leaves counts (nothing of it is written)
            return region
        blended = item.output
        item.output = ctx.provenance.watermark(blended)
        ctx.stages.add("watermark", time.perf_counter() - t1)
        if frame.image16 is not None:
            t1 = time.perf_counter()
            item.output16 = deep_output(frame.image16, frame.image, blended, [r for _, r in results], s,
                                        item.output)
        if ctx.layers_video:
            item.layer = layer_frame(item.output16 if item.output16 is not None else item.output,
                                     [r for _, r in results])
            ctx.stages.add("composite", time.perf_counter() - t1)
        return region


def layers_folder(ctx: RunContext, person: int) -> Path:
    """Where person ``person``'s face layers go: the layers folder itself for a one-model render, one
    sub-folder per model (named after it) when the render swaps several people."""
    assert ctx.layers is not None
    return ctx.layers if not ctx.others else ctx.layers / ctx.person(person).model.name


def _frame_region(res: FaceResult, shape: tuple[int, ...]) -> np.ndarray | None:
    """A face's matte over the whole frame (uint8, 255 = all swap), or None when it lies outside the frame."""
    x0, y0, x1, y1 = res.roi
    if not (x1 > x0 and y1 > y0):
        return None
    region = np.zeros(shape[:2], np.uint8)
    region[y0:y1, x0:x1] = np.clip(res.frame_matte * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return region


def composite_stage(ctx: RunContext, inp: Pipe, out: Pipe, flicker: FlickerMeter, first: int = 0) -> None:
    """Composite frames in order; those before ``first`` are a warm-up (state only, not passed on; the
    last one is watermarked so that the flicker of the pair across ``first`` is the full run's)."""
    compositor = Compositor(ctx)
    while True:
        item = inp.get()
        if item is END:
            break
        warm = item.frame.index < first
        compositor.process(item, warmup=warm)
        t0 = time.perf_counter()
        if warm and item.frame.index == first - 1:
            assert item.output is not None
            item.output = ctx.provenance.watermark(item.output)
        if item.shot_cut:
            flicker.reset()
        pairs = flicker.pairs
        flicker.update(item.frame.image, item.output, item.face_region)
        if warm:
            del flicker.input_change[pairs:], flicker.output_change[pairs:]
        item.face_region = None
        ctx.stages.add("measure", time.perf_counter() - t0)
        if not warm:
            out.put(item)
    out.put(END)
