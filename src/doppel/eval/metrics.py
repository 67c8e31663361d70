"""Quality metrics of a face swap, as pure functions on arrays.

Conventions: landmarks are ``float`` ``(N, 2)`` frame pixels (x, y), iBUG 68-point order first;
a landmark track is ``(T, N, 2)``; embeddings are ``float`` ``(D,)`` or ``(T, D)`` (any scale:
they are L2-normalised here); frames are uint8 RGB ``(H, W, 3)``.

- identity: cosine similarity of embeddings to identity centroids, and nearest-centroid retrieval;
- expression and pose: landmark error normalised by the inter-ocular distance (the 300-W NME,
  outer eye corners 36 and 45), head-pose difference as a rotation angle, and the correlation of
  mouth and eye openness (:mod:`doppel.ops.face`) over time;
- steadiness: landmark jitter (:func:`doppel.extract.metrics.pooled_jitter` over runs of
  consecutive frames); flicker is :class:`doppel.merge.temporal.FlickerMeter` (merge's metric, reused);
- seams: gradient energy on the matte's feather band, output over input (:class:`SeamMeter`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import cv2
import numpy as np

from doppel.eval.sharpness import luma, sobel_magnitude
from doppel.extract.metrics import pooled_jitter, segments
from doppel.extract.pose import head_pose, rotation_from_angles
from doppel.ops.align import estimate_transform, transform_scale
from doppel.ops.face import (
    BROWS,
    CHIN,
    FOREHEAD_LIFT,
    NOSE_TOP,
    fill_hulls,
    hull_mask,
    hull_points,
    interocular,
    landmarks68,
)
from doppel.ops.mask import erode_blur

MATTE_WORK_SIZE = 192  # px: side of the window the seam matte is computed in


# -- identity --------------------------------------------------------------------------------------
def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows (or the one vector) scaled to unit length; zero vectors stay zero."""
    v = np.asarray(vectors, dtype=np.float64)
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(norm, 1e-12)


def centroid(embeddings: np.ndarray) -> np.ndarray:
    """Unit-length mean direction of ``(K, D)`` embeddings (each normalised first)."""
    e = np.asarray(embeddings, dtype=np.float64)
    if e.ndim != 2 or len(e) == 0:
        raise ValueError(f"expected (K >= 1, D) embeddings, got {e.shape}")
    return normalise(normalise(e).mean(0))


def cosine(embeddings: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of ``(T, D)`` (or one ``(D,)``) to ``reference`` ``(D,)``."""
    return normalise(embeddings) @ normalise(reference)


def nearest(embeddings: np.ndarray, centroids: Mapping[str, np.ndarray]) -> list[str]:
    """For each ``(T, D)`` row, the name of the most similar centroid."""
    if not centroids:
        raise ValueError("no identity centroids to compare with")
    names = list(centroids)
    sims = normalise(embeddings) @ normalise(np.stack([centroids[n] for n in names])).T
    return [names[i] for i in np.argmax(np.atleast_2d(sims), axis=1)]


@dataclass(frozen=True)
class IdentityScores:
    """Per-frame similarities (``(T,)``) and what they add up to. ``missing`` frames should have been
    scored but show no face: they count as failures in :attr:`retrieval` and :attr:`src_wins`."""

    sim_src: np.ndarray
    sim_dst: np.ndarray | None
    nearest: list[str]
    src: str
    missing: int = 0

    @property
    def retrieval(self) -> float:
        """Share of frames (missing ones included) whose nearest identity is the source."""
        total = len(self.nearest) + self.missing
        return sum(n == self.src for n in self.nearest) / total if total else float("nan")

    @property
    def src_wins(self) -> float | None:
        """Share of frames (missing ones included) more similar to the source than to the destination."""
        total = len(self.sim_src) + self.missing
        if self.sim_dst is None or total == 0:
            return None
        return float(np.sum(self.sim_src > self.sim_dst)) / total


def identity_scores(embeddings: np.ndarray, centroids: Mapping[str, np.ndarray], src: str,
                    dst: str | None = None, *, missing: int = 0) -> IdentityScores:
    """Similarity of ``(T, D)`` face embeddings to the ``src`` (and ``dst``) centroid, and the nearest
    of all ``centroids`` per frame; ``missing``: frames to score that showed no face (failures)."""
    if src not in centroids:
        raise ValueError(f"no centroid for source identity {src!r}; have {sorted(centroids)}")
    if dst is not None and dst not in centroids:
        raise ValueError(f"no centroid for destination identity {dst!r}; have {sorted(centroids)}")
    e = np.asarray(embeddings, dtype=np.float64).reshape(-1, np.asarray(centroids[src]).shape[-1])
    if len(e) == 0:
        return IdentityScores(np.zeros(0), None if dst is None else np.zeros(0), [], src, missing)
    return IdentityScores(cosine(e, centroids[src]), None if dst is None else cosine(e, centroids[dst]),
                          nearest(e, centroids), src, missing)


def match_share(embeddings: np.ndarray, reference: np.ndarray, distance: float, *, missing: int = 0) -> float | None:
    """Share of ``(T, D)`` raw embeddings within Euclidean ``distance`` of ``reference`` (the embedder's
    own same-person threshold, e.g. 0.6 for dlib), counting ``missing`` frames as misses; None if none."""
    e = np.asarray(embeddings, dtype=np.float64).reshape(-1, np.asarray(reference).shape[-1])
    total = len(e) + missing
    if total == 0:
        return None
    return float(np.sum(np.linalg.norm(e - np.asarray(reference, np.float64), axis=1) < distance)) / total


# -- expression and pose ---------------------------------------------------------------------------
def nme(predicted: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Mean point-to-point distance over the 68 points divided by the reference's inter-ocular
    distance, per frame: ``(T,)`` from two ``(T, 68, 2)`` tracks (or a scalar array for one frame)."""
    p, r = landmarks68(predicted), landmarks68(reference)
    if p.shape != r.shape:
        raise ValueError(f"landmark tracks differ in shape: {p.shape} vs {r.shape}")
    return np.linalg.norm(p - r, axis=-1).mean(-1) / interocular(r, between="corners")


def rotation_angle(a: np.ndarray, b: np.ndarray) -> float:
    """The angle in degrees of the rotation taking ``(3, 3)`` rotation ``b`` to ``a``."""
    # ||A - B||_F = 2 sqrt(2) sin(theta / 2): exact at 0, unlike acos of the trace
    chord = float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64))) / (2 * math.sqrt(2))
    return math.degrees(2 * math.asin(min(1.0, chord)))


def pose_errors(predicted: np.ndarray, reference: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
    """Head-pose difference in degrees per frame (the angle between the two fitted head rotations,
    :func:`doppel.extract.pose.head_pose`), ``(T,)`` from two ``(T, 68, 2)`` tracks in a
    ``(width, height)`` frame."""
    p, r = landmarks68(predicted), landmarks68(reference)
    out = []
    for a, b in zip(p, r, strict=True):
        ra = rotation_from_angles(*head_pose(a, frame_size))
        rb = rotation_from_angles(*head_pose(b, frame_size))
        out.append(rotation_angle(ra, rb))
    return np.asarray(out)


def correlation(a: np.ndarray, b: np.ndarray, *, min_std: float = 1e-6) -> float | None:
    """Pearson correlation of two ``(T,)`` signals; None when either is (nearly) constant or T < 3."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"expected two (T,) signals of one length, got {x.shape} and {y.shape}")
    if len(x) < 3 or x.std() < min_std or y.std() < min_std:
        return None
    return float(np.corrcoef(x, y)[0, 1])


# -- steadiness ------------------------------------------------------------------------------------
def track_jitter(frame_indices: np.ndarray, landmarks: np.ndarray, *, min_run: int = 3) -> float:
    """RMS second difference (pixels) of a ``(T, N, 2)`` landmark track, pooled over runs of
    consecutive frames (gaps break the chain); NaN when no run is ``min_run`` frames long."""
    lm = np.asarray(landmarks, dtype=np.float64)
    runs = segments(np.asarray(frame_indices), 1, min_length=min_run)
    return pooled_jitter([lm[s] for s in runs])


# -- masks and seams -------------------------------------------------------------------------------
def frame_hull(landmarks: np.ndarray, frame_shape: tuple[int, ...]) -> np.ndarray:
    """The face hull (merge's ``face`` region, forehead included) of frame landmarks, as a float32
    ``(H, W)`` mask in [0, 1]."""
    h, w = frame_shape[:2]
    return hull_mask(landmarks, max(h, w), "face")[:h, :w]


def frame_matte(landmarks: np.ndarray, frame_shape: tuple[int, ...], *, erode: float, blur: float) -> np.ndarray:
    """The feathered hull matte that a merge with these mask settings puts in the frame, float32
    ``(H, W)`` in [0, 1]. ``erode`` and ``blur`` are pixels of a 256 px ``full`` crop (as in
    :class:`~doppel.merge.settings.MergeSettings`), scaled to the frame by the eye-centre distance
    (0.31 of the crop side in the alignment template)."""
    lm = landmarks68(landmarks)
    scale = float(interocular(lm)) / (0.31 * 256)
    h, w = frame_shape[:2]
    # Work in a square window around the face (the matte is 0 beyond its feather): much cheaper
    # than blurring the whole frame.
    pad = abs(erode * scale) + 2 * blur * scale + 8
    # A generous bound on the hull (brows raised by 0.3 of the chin-to-nose-top line, more than
    # FOREHEAD_LIFT raises them); the window's size sets the work resolution, so keep it as it is.
    bound = np.concatenate([lm, lm[BROWS] + (lm[NOSE_TOP] - lm[CHIN]) * 0.3])
    lo, hi = bound.min(0) - pad, bound.max(0) + pad
    side = int(np.ceil(max(hi - lo)))
    x0, y0 = int(np.floor(lo[0])), int(np.floor(lo[1]))
    k = min(1.0, MATTE_WORK_SIZE / side)  # the feathered matte is smooth: build it small, then enlarge
    small = erode_blur(hull_mask((lm - (x0, y0)) * k, max(1, round(side * k)), "face"), erode * scale * k,
                       blur * scale * k)
    local = cv2.resize(small, (side, side), interpolation=cv2.INTER_LINEAR) if k < 1 else small
    out = np.zeros((h, w), np.float32)
    fx0, fy0, fx1, fy1 = max(0, x0), max(0, y0), min(w, x0 + side), min(h, y0 + side)
    if fx1 > fx0 and fy1 > fy0:
        out[fy0:fy1, fx0:fx1] = local[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0]
    return out


MEASURE_ERODE = 0.06  # the detail mask: the face hull shrunk by this share of the face's aligned crop side


def measure_mask(landmarks: np.ndarray, frame_shape: tuple[int, ...], *, erode: float = MEASURE_ERODE) -> np.ndarray:
    """Bool ``(H, W)``: where the face's own detail is measured (sharpness, warp error, self-swap
    fidelity). The face hull merge replaces (:func:`frame_hull`), shrunk by ``erode`` x the side of the
    face's ``full`` aligned crop in frame pixels (about 6 % keeps the feathered seam and the hairline out)."""
    lm = landmarks68(landmarks)
    side = 1.0 / max(transform_scale(estimate_transform(lm, 1)), 1e-9)  # the aligned crop's side in the frame
    radius = max(1, round(erode * side))
    h, w = frame_shape[:2]
    pts = hull_points(lm, lift=FOREHEAD_LIFT)
    lo = np.floor(pts.min(0)).astype(int) - 2
    hi = np.ceil(pts.max(0)).astype(int) + 2
    x0, y0, x1, y1 = max(0, lo[0]), max(0, lo[1]), min(w, hi[0]), min(h, hi[1])
    out = np.zeros((h, w), bool)
    if x1 <= x0 or y1 <= y0:
        return out
    local = np.zeros((y1 - y0 + 2, x1 - x0 + 2), np.uint8)  # a 1 px margin of 0: the frame edge is an edge too
    local[1:-1, 1:-1] = fill_hulls([pts - (x0, y0)], (y1 - y0, x1 - x0), antialias=False) > 0.5
    # eroded by a disc of ``radius``: what is farther than that from the outside (a distance transform is
    # the same shape as an elliptic erosion at a fraction of its cost for a 20-px radius)
    out[y0:y1, x0:x1] = cv2.distanceTransform(local, cv2.DIST_L2, 5)[1:-1, 1:-1] > radius
    return out


def gradient_magnitude(image: np.ndarray) -> np.ndarray:
    """Sobel gradient magnitude of the grey image, float32 ``(H, W)`` (grey levels per pixel)."""
    return sobel_magnitude(luma(image))


def seam_band(matte: np.ndarray, *, low: float = 0.05, high: float = 0.95, min_width: int = 3) -> np.ndarray:
    """Bool ``(H, W)``: the matte's feather zone (``low < matte < high``), widened to at least
    ``min_width`` pixels around the 0.5 contour so that a hard edge has a band too."""
    m = np.asarray(matte, dtype=np.float32)
    band = (m > low) & (m < high)
    inside = (m >= 0.5).astype(np.uint8)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (min_width, min_width))
    edge = cv2.dilate(inside, k).astype(bool) & ~cv2.erode(inside, k).astype(bool)
    return band | edge


@dataclass
class SeamMeter:
    """Gradient energy on the seam band, pooled over frames: output over input.

    1.0 means the band is exactly as busy in the output as in the input (no visible seam); a
    pasted face whose colour or brightness jumps at the mask edge scores above 1.
    """

    out_sum: float = 0.0
    in_sum: float = 0.0
    pixels: int = 0
    per_frame: list[float] = field(default_factory=list)

    def update(self, inp: np.ndarray, out: np.ndarray, matte: np.ndarray) -> None:
        ys, xs = np.nonzero(matte > 0.01)
        if len(ys) == 0:
            return
        h, w = matte.shape
        y0, y1, x0, x1 = max(0, ys.min() - 3), min(h, ys.max() + 4), max(0, xs.min() - 3), min(w, xs.max() + 4)
        band = seam_band(matte[y0:y1, x0:x1])
        if not band.any():
            return
        go = gradient_magnitude(out[y0:y1, x0:x1])[band]
        gi = gradient_magnitude(inp[y0:y1, x0:x1])[band]
        self.out_sum += float(go.sum())
        self.in_sum += float(gi.sum())
        self.pixels += int(band.sum())
        self.per_frame.append(float(go.mean() / max(gi.mean(), 1e-6)))

    @property
    def score(self) -> float | None:
        return self.out_sum / max(self.in_sum, 1e-6) if self.pixels else None
