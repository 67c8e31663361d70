"""`doppel eval`: compare a merged clip with its original, frame by frame.

:func:`evaluate` reads top to bottom:

1. ``check``: both clips readable, same size and frame count; identity centroids from the
   :class:`References` (what :func:`doppel.workflow.evaluate.references` reads from the workspace).
2. ``track``: faces of both clips with the same tracker; the original's main person, and the same
   head in the merged clip (:mod:`doppel.eval.faces`).
3. ``landmarks``: expression and pose error, openness correlations, jitter.
4. ``pixels``: a second decode of both clips in step, inside the original's face
   (:func:`~doppel.eval.metrics.measure_mask`): detail (:func:`~doppel.eval.sharpness.sharpness_ratio`),
   temporal consistency (:class:`~doppel.eval.temporal.WarpErrorMeter`, the temporal bar: optical flow
   of the original, so a frozen face or flicker cannot hide) and gaze (:mod:`doppel.eval.gaze`); flicker
   (merge's :class:`~doppel.merge.temporal.FlickerMeter` over the landmark hull, kept for information:
   a blurred or frozen face scores well on it), seams, identity embeddings (every ``embed_every``-th
   compared frame: dlib's ResNet costs ~80 ms a face) and contact-sheet tiles.
5. ``report``: the numbers, and the contact sheet written atomically.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from doppel.core.errors import InputError, NoFaceError, WorkspaceError
from doppel.core.progress import ProgressFn, no_progress
from doppel.eval import gaze, metrics, sharpness
from doppel.eval.faces import SeenFace, main_person, matched, scan
from doppel.eval.report import EvalReport, FrameRow
from doppel.eval.sheet import contact_sheet, face_crop, sheet_tile
from doppel.eval.temporal import WarpErrorMeter
from doppel.extract import backends
from doppel.io.atomic import atomic_path
from doppel.io.image import write_image
from doppel.io.video import probe, read_frames
from doppel.merge.settings import MergeSettings
from doppel.merge.temporal import FlickerMeter, face_region
from doppel.ops import face
from doppel.provenance.watermark import Watermarker, render_payload

log = logging.getLogger(__name__)

EMBEDDER = "dlib-resnet"
MAX_EMBEDDED = 60  # compared frames embedded per clip by default (~80 ms each, twice: output and input)
SHEET_COLUMNS = 6


@dataclass(frozen=True)
class EvalRequest:
    """What to compare. ``swapped``: frames the merge replaced (from its render record), or None to
    compare every frame where both clips show the face. ``settings`` give the seam matte."""

    original: Path
    merged: Path
    src: str
    dst: str | None = None
    render: str | None = None
    swapped: frozenset[int] | None = None
    settings: MergeSettings = field(default_factory=MergeSettings)
    embed_every: int | None = None
    sheet: Path | None = None
    fps: str | None = None  # the frame rate of image-sequence inputs
    model: str | None = None  # the model that made the merge, when known (a render's)


@dataclass(frozen=True)
class References:
    """What a clip is compared with: each identity's stored face embeddings ``(K, D)`` by name, the
    destination's known face boxes in the original clip by frame (to pick the right person), and one
    aligned face of the source (uint8 RGB) for the contact sheet."""

    embeddings: dict[str, np.ndarray]
    known_boxes: dict[int, np.ndarray] | None = None
    source_face: np.ndarray | None = None


def evaluate(request: EvalRequest, refs: References, *, progress: ProgressFn = no_progress) -> EvalReport:
    """Measure ``request.merged`` against ``request.original``; see the module docstring.

    Raises ``InputError``/``MediaError`` for unreadable or mismatched clips, ``WorkspaceError`` when
    an identity has no stored embeddings, ``NoFaceError`` when no frame shows the face in both.
    """
    started = time.perf_counter()
    stages: dict[str, float] = {}
    t = time.perf_counter()
    # 1. check
    a, b = probe(request.original, fps=request.fps), probe(request.merged, fps=request.fps)
    if (a.width, a.height) != (b.width, b.height):
        raise InputError(f"is {b.width}x{b.height} but the original is {a.width}x{a.height}; compare a merge "
                         "with the clip it was made from", path=request.merged)
    if a.frame_count != b.frame_count:
        raise InputError(f"has {b.frame_count} frames but the original has {a.frame_count}", path=request.merged)
    stored = refs.embeddings
    centroids = {name: metrics.centroid(e) for name, e in stored.items()}
    for name in (request.src, request.dst):
        if name is not None and name not in centroids:
            raise WorkspaceError(f"identity {name!r} has no face embeddings to compare with; extract its faces "
                                 "first (`doppel extract`)")
    stages["check"] = time.perf_counter() - t

    # 2. track
    t = time.perf_counter()
    total = 2 * a.frame_count + (a.frame_count if request.embed_every != 0 else 0)

    def step(offset: int) -> ProgressFn:
        return lambda done, _total, /: progress(offset + done, total)

    ref = main_person(scan(request.original, progress=step(0), total=total), refs.known_boxes)
    out = matched(ref, scan(request.merged, progress=step(a.frame_count), total=total))
    # targets: frames where the original shows the face (and the merge swapped it); frames: of those,
    # where the detector confirms a face in the merged clip too. Where it does not, the frame counts
    # as an identity failure (so a swap too poor to read as a face cannot pass by being left out).
    targets = sorted(i for i in ref if request.swapped is None or i in request.swapped)
    frames = [i for i in targets if i in out]
    if not targets:
        raise NoFaceError("the original shows no face in the frames to compare", path=request.original)
    if not frames:
        log.warning("%s: no face found in any compared frame; only identity and pixel metrics", request.merged)
    stages["track"] = time.perf_counter() - t

    # 3. landmarks
    t = time.perf_counter()
    lm_in = np.array([ref[i].landmarks for i in frames], dtype=np.float64).reshape(-1, 68, 2)
    lm_out = np.array([out[i].landmarks for i in frames], dtype=np.float64).reshape(-1, 68, 2)
    nme = metrics.nme(lm_out, lm_in)
    pose = metrics.pose_errors(lm_out, lm_in, (a.width, a.height))
    mouth_in, mouth_out = face.mouth_openness(lm_in), face.mouth_openness(lm_out)
    eye_in, eye_out = face.eye_openness(lm_in).mean(-1), face.eye_openness(lm_out).mean(-1)  # both eyes
    idx = np.asarray(frames)
    stages["landmarks"] = time.perf_counter() - t

    # 4. pixels
    t = time.perf_counter()
    every = request.embed_every or max(1, math.ceil(len(targets) / MAX_EMBEDDED))
    embed_at = set(targets[::every])
    sheet_at = set(targets[i] for i in np.linspace(0, len(targets) - 1, min(SHEET_COLUMNS, len(targets))).round()
                   .astype(int))
    pixels = _Pixels(request, ref, out, embed_at, sheet_at)
    for n, (fa, fb) in enumerate(zip(read_frames(request.original), read_frames(request.merged), strict=True), 1):
        pixels.update(fa.index, fa.image, fb.image)
        progress(2 * a.frame_count + n, total)
    stages["pixels"] = time.perf_counter() - t

    # 5. report
    t = time.perf_counter()
    emb_frames = sorted(pixels.emb_out)
    missing = len(pixels.emb_in) - len(emb_frames)  # no face in the merge where identity was to be measured
    ids = ids_in = None
    if pixels.emb_in:
        dim = len(next(iter(pixels.emb_in.values())))
        ids = metrics.identity_scores(np.array([pixels.emb_out[i] for i in emb_frames]).reshape(-1, dim), centroids,
                                      request.src, request.dst, missing=missing)
        ids_in = metrics.identity_scores(np.stack([pixels.emb_in[i] for i in sorted(pixels.emb_in)]), centroids,
                                         request.src, request.dst)
    match = match_in = None
    if pixels.emb_in:  # dlib's own same-person test: raw distance to the source's mean embedding
        ref_src, limit = stored[request.src].mean(0), backends.embedder(EMBEDDER).match_distance
        dim = len(ref_src)
        match = metrics.match_share(np.array([pixels.emb_out[i] for i in emb_frames]).reshape(-1, dim), ref_src,
                                    limit, missing=missing)
        match_in = metrics.match_share(np.stack([pixels.emb_in[i] for i in sorted(pixels.emb_in)]), ref_src, limit)
    measured = {i: (float(e), float(p)) for i, e, p in zip(frames, nme, pose, strict=True)}
    rows = [FrameRow(int(i), *measured.get(i, (None, None))) for i in targets]
    for row in rows:
        row.sharpness = pixels.sharp.get(row.frame)
    if ids is not None:
        pos = {f: k for k, f in enumerate(emb_frames)}
        for row in rows:
            if row.frame in pos:
                k = pos[row.frame]
                row.sim_src = float(ids.sim_src[k])
                row.sim_dst = float(ids.sim_dst[k]) if ids.sim_dst is not None else None
                row.nearest = ids.nearest[k]
    sheet_path = None
    if request.sheet is not None and pixels.tiles:
        sheet_path = _write_sheet(request, refs.source_face, pixels, {r.frame: r for r in rows})
    stages["report"] = time.perf_counter() - t

    def mean(x: np.ndarray | None) -> float | None:
        return float(np.mean(x)) if x is not None and len(x) else None

    def std(x: np.ndarray) -> float | None:
        return float(np.std(x)) if len(x) else None

    sharp = np.array([v for v in pixels.sharp.values() if math.isfinite(v)])

    def pct(q: float) -> float | None:
        return float(np.percentile(sharp, q)) if len(sharp) else None

    order = sorted(pixels.iris_in)
    gaze_corr, gaze_err = gaze.gaze_agreement(gaze.gaze_signal(np.array([pixels.iris_in[i] for i in order])),
                                              gaze.gaze_signal(np.array([pixels.iris_out[i] for i in order])))
    warp = pixels.warp.result

    report = EvalReport(
        original=str(request.original), merged=str(request.merged), src=request.src, dst=request.dst,
        render=request.render, frames=a.frame_count, frames_compared=len(frames),
        frames_face_lost=len(targets) - len(frames), frames_embedded=len(pixels.emb_in),
        embed_every=every,
        id_sim_src=mean(ids.sim_src) if ids else None, id_sim_dst=mean(ids.sim_dst) if ids else None,
        id_src_wins=ids.src_wins if ids else None, id_retrieval=ids.retrieval if ids else None,
        id_sim_src_input=mean(ids_in.sim_src) if ids_in else None,
        id_sim_dst_input=mean(ids_in.sim_dst) if ids_in else None,
        id_retrieval_input=ids_in.retrieval if ids_in else None,
        id_match_src=match, id_match_src_input=match_in,
        expression_nme=mean(nme), expression_nme_median=float(np.median(nme)) if len(nme) else None,
        pose_error_deg=mean(pose),
        mouth_corr=metrics.correlation(mouth_in, mouth_out), eye_corr=metrics.correlation(eye_in, eye_out),
        mouth_std_input=std(mouth_in), eye_std_input=std(eye_in),
        jitter_px=metrics.track_jitter(idx, lm_out), jitter_px_input=metrics.track_jitter(idx, lm_in),
        sharpness_ratio=pct(50), sharpness_p10=pct(10), sharpness_p90=pct(90),
        warp_error_ratio=warp.ratio, warp_error_p95=warp.p95, warp_error_normalised=warp.normalised_ratio,
        warp_pairs=warp.pairs, gaze_corr=gaze_corr, gaze_err=gaze_err,
        flicker_ratio=pixels.flicker.ratio, seam_score=pixels.seam.score, identities=sorted(centroids),
        sheet=str(sheet_path) if sheet_path else None, per_frame=rows)
    report.stages = {k: round(v, 3) for k, v in stages.items()}
    report.seconds = time.perf_counter() - started
    log.info("eval %s: %d frames compared, %d embedded, %.1f s", request.merged, len(frames), len(emb_frames),
             report.seconds)
    return report


class _Pixels:
    """Step 4's per-frame work, fed both clips' frames in order."""

    def __init__(self, request: EvalRequest, ref: dict[int, SeenFace], out: dict[int, SeenFace],
                 embed_at: set[int], sheet_at: set[int]) -> None:
        self.request, self.ref, self.out = request, ref, out
        self.embed_at, self.sheet_at = embed_at, sheet_at
        self.tile = sheet_tile([ref[i].box for i in sheet_at if i in ref])
        self.embedder = backends.embedder(EMBEDDER) if embed_at and request.embed_every != 0 else None
        self.flicker = FlickerMeter()
        self.warp = WarpErrorMeter()
        self.seam = metrics.SeamMeter()
        self.sharp: dict[int, float] = {}
        self.iris_in: dict[int, np.ndarray] = {}
        self.iris_out: dict[int, np.ndarray] = {}
        self.emb_in: dict[int, np.ndarray] = {}
        self.emb_out: dict[int, np.ndarray] = {}
        self.tiles: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def update(self, index: int, original: np.ndarray, merged: np.ndarray) -> None:
        r = self.ref.get(index)
        swapped = self.request.swapped is None or index in self.request.swapped
        if r is None or not swapped:
            self.flicker.update(original, merged, None)
            self.warp.update(original, merged, None)
            return
        s = self.request.settings
        matte = metrics.frame_matte(r.landmarks, original.shape, erode=s.mask_erode, blur=s.mask_blur)
        self.flicker.update(original, merged, face_region(r.landmarks, original.shape))
        inside = metrics.measure_mask(r.landmarks, original.shape)
        self.warp.update(original, merged, inside)
        if inside.any():
            self.sharp[index] = sharpness.sharpness_ratio(merged, original, inside)
        # the irises read inside the original's eye outlines in both clips: where the plate's eyes look
        self.iris_in[index] = gaze.iris_positions(original, r.landmarks)
        self.iris_out[index] = gaze.iris_positions(merged, r.landmarks)
        o = self.out.get(index)
        self.seam.update(original, merged, matte)
        if self.embedder is not None and index in self.embed_at:
            self.emb_in[index] = self.embedder.embed(original, r.landmarks)
            if o is not None:  # no face there: a failure for identity, not something to embed
                self.emb_out[index] = self.embedder.embed(merged, o.landmarks)
        if index in self.sheet_at:
            self.tiles[index] = (face_crop(original, r.box, size=self.tile), face_crop(merged, r.box, size=self.tile))


def _write_sheet(request: EvalRequest, source_face: np.ndarray | None, pixels: _Pixels,
                 rows: dict[int, FrameRow]) -> Path:
    assert request.sheet is not None
    order = sorted(pixels.tiles)
    labels = []
    for i in order:
        row = rows.get(i)
        sim = f" src {row.sim_src:.2f}" if row is not None and row.sim_src is not None else ""
        sharp = f" sh {row.sharpness:.2f}" if row is not None and row.sharpness is not None else ""
        labels.append(f"#{i}{sim}{sharp}")
    # The merged tiles are swapped faces cut out of the clip, too small for the clip's mark to survive:
    # each carries the mark itself (a mosaic cannot carry one mark as a whole; a face cut out of it can).
    mark = Watermarker(render_payload(request.render or f"eval:{request.merged.name}")).embed
    sheet = contact_sheet([pixels.tiles[i][0] for i in order], [mark(pixels.tiles[i][1]) for i in order], labels,
                          source=source_face, source_label=f"source: {request.src}",
                          title=f"doppel eval: {request.merged.name} vs {request.original.name}")
    with atomic_path(request.sheet) as tmp:
        write_image(tmp, sheet)
    return request.sheet
