"""One frame of the merge: crop-space mask, colour, sharpen and occlusion, then unalign and blend.

Pure per-frame maths plus the small temporal state it carries from frame to frame; no I/O, no
watermark (the pipeline applies that to every frame it writes).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from doppel.merge import occlusion as occ
from doppel.merge.blend import BLENDS
from doppel.merge.colour import COLOUR_TRANSFERS
from doppel.merge.masks import apply_polygons, face_matte, region_hull
from doppel.merge.settings import MergeSettings
from doppel.merge.temporal import FaceSmoother, MatteSmoother, VectorSmoother, VisibleSmoother
from doppel.ops.align import invert, warp_to_frame
from doppel.ops.face import hull_mask
from doppel.ops.resample import cut_face, place_face
from doppel.segment.labels import lifted_hull

SURE_NOT, SURE = 0.25, 0.75  # segmenter probabilities taken as certainly covered / certainly face


@dataclass
class TemporalState:
    """What carries over between consecutive frames of one shot."""

    colour: VectorSmoother = field(default_factory=VectorSmoother)
    matte: MatteSmoother = field(default_factory=MatteSmoother)
    face: FaceSmoother = field(default_factory=FaceSmoother)
    visible: VisibleSmoother = field(default_factory=VisibleSmoother)

    def reset(self) -> None:
        self.colour.reset()
        self.matte.reset()
        self.face.reset()
        self.visible.reset()

    @staticmethod
    def memory(settings: MergeSettings, tolerance: float = 1e-5) -> int:
        """Frames after which the state has forgotten where it started to within ``tolerance``: each smoother
        is a moving average whose start keeps a weight ``w**n`` after ``n`` frames (the face smoother's weight
        is at most ``face_smoothing``, the visible-face smoother's at most ``mask_smoothing``). A run-up this
        long before a frame gives that frame as a run from the shot's start does, up to ``tolerance`` of the
        first difference (far below one 8-bit level)."""
        if not settings.smoothing:
            return 0
        w = max(settings.colour_smoothing, settings.face_smoothing, settings.mask_smoothing)
        return 0 if w <= 0 else math.ceil(math.log(tolerance) / math.log(w))


@dataclass(frozen=True)
class Visible:
    """The segmenter's view of the plate, in the swap's crop: float32 ``(S, S)`` in [0, 1] each."""

    face: np.ndarray  # the visible face (not hair, hands, objects or glasses)
    glasses: np.ndarray  # glasses in front of the face

    def keep(self, glasses: str, margin: float = 0.0) -> np.ndarray:
        """What the swap may cover: the visible face, and the glasses too when ``glasses`` is ``source``;
        probabilities under :data:`SURE_NOT` count as 0 and over :data:`SURE` as 1, so an edge stays hard
        and a half-sure occluder is not ghosted over. ``margin`` (px at 256) pulls it back from every
        edge: the segmenter works at 128 px, so its edges sit a few plate pixels off, and where one
        falls on an occluder the swap would paint a sliver of it."""
        p = np.clip(self.face + self.glasses, 0.0, 1.0) if glasses == "source" else self.face
        keep = np.clip((p - SURE_NOT) / (SURE - SURE_NOT), 0.0, 1.0).astype(np.float32)
        r = round(margin * keep.shape[0] / 256)
        return cv2.erode(keep, np.ones((2 * r + 1, 2 * r + 1), np.uint8)) if r > 0 else keep


@dataclass
class FaceResult:
    """The swapped face ready to put in, in crop space and in the frame region it covers."""

    face: np.ndarray  # float32 (S, S, 3) RGB in [0, 1]: colour-matched, sharpened
    matte: np.ndarray  # float32 (S, S) in [0, 1]: final matte (occluders cut out when asked)
    transform: np.ndarray  # float64 (2, 3) frame -> crop, with face_scale applied
    roi: tuple[int, int, int, int]  # x0, y0, x1, y1 in frame pixels (empty when off-frame)
    frame_matte: np.ndarray  # float32 (y1-y0, x1-x0) matte in the frame region
    occlusion: float | None
    uncertainty: float | None = None  # segmenter's doubt inside the face (mean 4p(1-p)), occlusion=segment
    leak: float | None = None  # share of the face where the swap covers something the plate shows differently


def scaled_transform(matrix: np.ndarray, size: int, scale: float) -> np.ndarray:
    """Frame -> crop transform whose inverse draws the crop ``scale`` times larger about its centre."""
    if scale == 1.0:
        return np.asarray(matrix, dtype=np.float64)
    c = size / 2.0
    shrink = np.array([[1 / scale, 0, c - c / scale], [0, 1 / scale, c - c / scale], [0, 0, 1]])
    full = np.vstack([matrix, [0, 0, 1]])
    return (shrink @ full)[:2]


def crop_roi(matrix: np.ndarray, size: int, frame_shape: tuple[int, ...], pad: int = 2) -> tuple[int, int, int, int]:
    """Bounding box in the frame of the ``size`` x ``size`` crop under ``matrix`` (clipped)."""
    inv = invert(matrix)
    corners = np.array([[0, 0], [size, 0], [0, size], [size, size]], dtype=np.float64)
    pts = corners @ inv[:, :2].T + inv[:, 2]
    h, w = frame_shape[:2]
    x0 = int(max(0, np.floor(pts[:, 0].min()) - pad))
    y0 = int(max(0, np.floor(pts[:, 1].min()) - pad))
    x1 = int(min(w, np.ceil(pts[:, 0].max()) + pad))
    y1 = int(min(h, np.ceil(pts[:, 1].max()) + pad))
    return x0, y0, max(x0, x1), max(y0, y1)


def _roi_matrix(matrix: np.ndarray, x0: int, y0: int) -> np.ndarray:
    m = np.asarray(matrix, dtype=np.float64).copy()
    m[:, 2] += m[:, :2] @ np.array([x0, y0], dtype=np.float64)
    return m


def sharpen(face: np.ndarray, amount: float) -> np.ndarray:
    if amount <= 0:
        return face
    sigma = max(face.shape[0] / 128.0, 0.8)
    soft = cv2.GaussianBlur(face, (0, 0), sigma)
    return np.clip(face + amount * (face - soft), 0.0, 1.0)


def _segment_scores(keep: np.ndarray, raw: np.ndarray, core: np.ndarray) -> tuple[float, float]:
    """``(occluded, uncertainty)`` inside the jaw-to-brows hull ``core``: the share the segmenter keeps
    off the swap, and its doubt (mean of 4p(1-p), 0 = sure everywhere)."""
    area = max(float(core.sum()), 1.0)
    occluded = 1.0 - float((core * keep).sum()) / area
    uncertainty = float((core * 4.0 * raw * (1.0 - raw)).sum()) / area
    return round(max(0.0, occluded), 5), round(uncertainty, 5)


def prepare_face(frame: np.ndarray, matrix: np.ndarray, swapped: np.ndarray, learned: np.ndarray | None,
                 landmarks_crop: np.ndarray, landmark_score: float | None, settings: MergeSettings,
                 state: TemporalState, visible: Visible | None = None) -> FaceResult:
    """Everything of one frame's swap but the blend.

    ``frame``: uint8 ``(H, W, 3)`` RGB; ``matrix``: float64 ``(2, 3)`` frame -> crop at the model's
    resolution ``S``; ``swapped``: float32 ``(S, S, 3)`` RGB in [0, 1]; ``learned``: float32 ``(S, S)``;
    ``visible``: the segmenter's masks of the plate in this crop (used when ``occlusion`` is ``segment``).
    """
    size = swapped.shape[0]
    plate = cut_face(frame, matrix, size).astype(np.float32) / 255.0
    face_hull = hull_mask(landmarks_crop, size, "face")
    segment = settings.occlusion == "segment" and visible is not None
    keep: np.ndarray | None = None
    if segment:
        assert visible is not None
        keep = visible.keep(settings.glasses, settings.occluder_margin)
        keep = state.visible.update(keep, plate, settings.mask_smoothing) if settings.smoothing else keep
    else:
        state.visible.reset()
    stats_mask = face_hull * (learned if learned is not None else 1.0) * (keep if keep is not None else 1.0)

    # colour: statistics fitted on the face, smoothed over time, then applied
    transfer = COLOUR_TRANSFERS.create(settings.colour)
    params = transfer.fit(swapped, plate, stats_mask, stats_mask)
    if settings.smoothing:
        params = state.colour.update(params, settings.colour_smoothing)
    else:
        state.colour.reset()
    face = transfer.apply(swapped, params)
    if settings.smoothing:
        face = state.face.update(face, plate, settings.face_smoothing)
    else:
        state.face.reset()
    face = sharpen(face, settings.sharpen)

    # matte: region hull x learned mask, eroded and feathered, smoothed over time; occluders cut out
    hull = face_hull if settings.mask_region == "face" else region_hull(landmarks_crop, size, settings)
    matte = face_matte(landmarks_crop, learned, size, settings, hull=hull)
    if settings.smoothing:
        matte = state.matte.update(matte, settings.mask_smoothing)
    else:
        state.matte.reset()
    if keep is not None:
        matte = matte * keep  # after the matte's smoothing: an occluder's edge neither lags nor blurs
    if settings.mask_polygons:
        matte = apply_polygons(matte, settings.mask_polygons)
    occlusion: float | None = None
    uncertainty: float | None = None
    leak: float | None = None
    if settings.occlusion != "off":
        found = occ.estimate(face, plate, face_hull, learned, landmarks_crop, landmark_score)
        occlusion = found.score
        if settings.occlusion == "exclude":
            matte = matte * (1.0 - found.map)
        if segment and keep is not None and visible is not None:
            core = lifted_hull(landmarks_crop, size, 0.0)
            occluded, uncertainty = _segment_scores(keep, visible.face, core)
            occlusion = max(occluded, found.low_confidence)
            # the heuristic as evidence: where the swap now covers something the plate shows differently
            leak = round(float((found.map * (matte > 0.5) * core).sum()) / max(float(core.sum()), 1.0), 5)

    transform = scaled_transform(matrix, size, settings.face_scale)
    x0, y0, x1, y1 = crop_roi(transform, size, frame.shape)
    if x1 > x0 and y1 > y0:
        frame_matte = warp_to_frame(matte, _roi_matrix(transform, x0, y0), (y1 - y0, x1 - x0))
    else:
        frame_matte = np.zeros((0, 0), np.float32)
    return FaceResult(face, matte, transform, (x0, y0, x1, y1), frame_matte, occlusion, uncertainty, leak)


def deep_output(plate16: np.ndarray, plate8: np.ndarray, out8: np.ndarray, results: Sequence[FaceResult],
                settings: MergeSettings, marked8: np.ndarray) -> np.ndarray:
    """The frame at 16 bits per channel, for a 10- or 16-bit plate: what the 8-bit composite changed, carried
    onto the deep plate, so no part of the picture makes an 8-bit round trip it does not need.

    ``out8`` is the 8-bit composite before the watermark, ``marked8`` after it; ``results``: every swapped
    face of the frame in compositing order. Outside the faces the deep plate keeps every bit and only the
    watermark's change is added (x257). Inside them, an alpha blend is redone in floating point from each
    model's face and matte, each over what came before; other blends carry their 8-bit change.
    """
    out = plate16.astype(np.int32) + 257 * (out8.astype(np.int32) - plate8.astype(np.int32))
    if settings.blend == "alpha" and results:
        deep = plate16.astype(np.float32)
        rois = []
        for result in results:
            x0, y0, x1, y1 = result.roi
            if not (x1 > x0 and y1 > y0):
                continue
            face = place_face(np.clip(result.face, 0.0, 1.0).astype(np.float32),
                              _roi_matrix(result.transform, x0, y0), (y1 - y0, x1 - x0))
            m = result.frame_matte[..., None].astype(np.float32)
            under = deep[y0:y1, x0:x1]
            deep[y0:y1, x0:x1] = under + m * (face * 65535.0 - under)
            rois.append((x0, y0, x1, y1))
        for x0, y0, x1, y1 in rois:
            out[y0:y1, x0:x1] = np.round(deep[y0:y1, x0:x1]).astype(np.int32)
    out += 257 * (marked8.astype(np.int32) - out8.astype(np.int32))
    return np.clip(out, 0, 65535).astype(np.uint16)


def layer_frame(output: np.ndarray, results: Sequence[FaceResult]) -> np.ndarray:
    """A compositing layer as one frame: uint16 ``(H, W, 4)``, the merged frame (watermarked, so the layer
    carries the mark wherever it is shown) with the faces' mattes as alpha (their union where several
    people were swapped; 0 where no face was)."""
    rgb = output.astype(np.uint16) * (257 if output.dtype == np.uint8 else 1)
    alpha = np.zeros(rgb.shape[:2], np.uint16)
    for result in results:
        x0, y0, x1, y1 = result.roi
        if x1 > x0 and y1 > y0:
            a = np.round(np.clip(result.frame_matte, 0, 1) * 65535.0).astype(np.uint16)
            alpha[y0:y1, x0:x1] = np.maximum(alpha[y0:y1, x0:x1], a)
    return np.concatenate([rgb, alpha[..., None]], axis=2)


def blend_into(frame: np.ndarray, result: FaceResult, settings: MergeSettings) -> np.ndarray:
    """A new frame with the face blended in; outside the face's region the frame is copied unchanged."""
    out = frame.copy()
    x0, y0, x1, y1 = result.roi
    if x1 <= x0 or y1 <= y0:
        return out
    face_u8 = np.clip(result.face * 255.0 + 0.5, 0, 255).astype(np.uint8)
    face_roi = place_face(face_u8, _roi_matrix(result.transform, x0, y0), (y1 - y0, x1 - x0))
    plate = frame[y0:y1, x0:x1]
    out[y0:y1, x0:x1] = BLENDS.create(settings.blend).blend(plate, face_roi, result.frame_matte)
    return out
