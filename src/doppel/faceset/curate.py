"""Face-set curation: statistics (counts, sharpness, pose coverage) and reversible pruning.

Pose coverage is counted on a yaw/pitch grid of :data:`POSE_BIN` degree cells. A destination
face is *covered* by a source set when some source face lies within :data:`COVER_RADIUS`
degrees of it in (yaw, pitch): a model rarely learns poses it never saw, so uncovered
destination poses are where a swap will fail.

Pruning never deletes: it sets ``faces.excluded = 1`` with a reason (``blur``, ``duplicate``,
``outlier``); :func:`unprune` clears it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from doppel.core.errors import ConfigError
from doppel.core.progress import ProgressFn, no_progress
from doppel.io.image import read_image
from doppel.ops.align import transform_points
from doppel.store import Workspace
from doppel.store.records import FaceRecord

log = logging.getLogger(__name__)

POSE_BIN = 10.0
COVER_RADIUS = 10.0
YAW_RANGE = (-90.0, 90.0)
PITCH_RANGE = (-60.0, 60.0)
REASONS = ("blur", "duplicate", "outlier")


def _percentiles(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {}
    p = np.percentile(values, [0, 10, 50, 90, 100])
    return {"min": float(p[0]), "p10": float(p[1]), "median": float(p[2]), "p90": float(p[3]), "max": float(p[4])}


def poses(records: list[FaceRecord]) -> np.ndarray:
    """``(N, 2)`` float64 (yaw, pitch) in degrees."""
    return np.array([(f.yaw, f.pitch) for f in records], dtype=np.float64).reshape(-1, 2)


def pose_cells(yaw_pitch: np.ndarray) -> set[tuple[int, int]]:
    """The grid cells (lower-left corner in degrees) holding at least one pose."""
    cells = np.floor(yaw_pitch / POSE_BIN).astype(int) * int(POSE_BIN)
    return {(int(y), int(p)) for y, p in cells}


def uncovered(source: np.ndarray, dest: np.ndarray, radius: float = COVER_RADIUS) -> np.ndarray:
    """Boolean ``(len(dest),)``: destination poses with no source pose within ``radius`` degrees."""
    if len(dest) == 0:
        return np.zeros(0, dtype=bool)
    if len(source) == 0:
        return np.ones(len(dest), dtype=bool)
    out = np.ones(len(dest), dtype=bool)
    for start in range(0, len(dest), 4096):  # bounded memory for big sets
        d = dest[start:start + 4096, None, :] - source[None, :, :]
        out[start:start + 4096] = np.min(np.sum(d**2, axis=-1), axis=1) > radius**2
    return out


def stats(ws: Workspace, identity: str, *, against: str | None = None) -> dict[str, Any]:
    """Counts, blur distribution and pose coverage of a face set; with ``against`` (a destination
    set), which of its poses this set does not cover."""
    every = ws.faces.of(identity, include_excluded=True)
    kept = [f for f in every if not f.excluded]
    reasons: dict[str, int] = {}
    for f in every:
        if f.excluded:
            reasons[f.exclude_reason or "unknown"] = reasons.get(f.exclude_reason or "unknown", 0) + 1
    yp = poses(kept)
    blur = np.array([f.blur for f in kept])
    report: dict[str, Any] = {
        "identity": identity, "faces": len(every), "included": len(kept), "excluded": len(every) - len(kept),
        "excluded_by_reason": reasons, "clips": len({f.clip_id for f in every}),
        "blur": _percentiles(blur),
        "yaw": _percentiles(yp[:, 0]), "pitch": _percentiles(yp[:, 1]),
        "pose_cells": len(pose_cells(yp)), "pose_bin_degrees": POSE_BIN,
    }
    if against is not None:
        dest = [f for f in ws.faces.of(against) if not f.excluded]
        dyp = poses(dest)
        miss = uncovered(yp, dyp)
        cells: dict[tuple[int, int], int] = {}
        for y, p in np.floor(dyp[miss] / POSE_BIN).astype(int) * int(POSE_BIN):
            cells[(int(y), int(p))] = cells.get((int(y), int(p)), 0) + 1
        report["against"] = {
            "identity": against, "faces": len(dest), "uncovered": int(miss.sum()),
            "uncovered_fraction": float(miss.mean()) if len(dest) else 0.0, "cover_radius_degrees": COVER_RADIUS,
            "uncovered_cells": [{"yaw": y, "pitch": p, "faces": n}
                                for (y, p), n in sorted(cells.items(), key=lambda kv: -kv[1])],
        }
    return report


@dataclass(frozen=True)
class PruneCriteria:
    """``blur_below``: blur score under which a face is too soft; ``duplicates``: thumbnail
    distance (mean absolute difference of 32x32 grey thumbnails, 0-1) under which a face repeats a
    kept one; ``outliers``: identity distance from the set's median embedding above which a face is
    someone else (dlib: 0.6 separates people)."""

    blur_below: float | None = None
    duplicates: float | None = None
    outliers: float | None = None

    def __post_init__(self) -> None:
        if self.blur_below is None and self.duplicates is None and self.outliers is None:
            raise ConfigError("nothing to prune by: give --blur-below, --duplicates and/or --outliers")
        if self.duplicates is not None and not 0 < self.duplicates < 1:
            raise ConfigError(f"--duplicates is a thumbnail distance within (0, 1), got {self.duplicates}")
        if self.outliers is not None and not self.outliers > 0:
            raise ConfigError(f"--outliers is an identity distance > 0, got {self.outliers}")


def _thumbnail(path: Any) -> np.ndarray:
    gray = cv2.cvtColor(read_image(path), cv2.COLOR_RGB2GRAY)
    return cv2.resize(gray, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


_DUP_WINDOW = 64  # compare with this many most recently kept faces (duplicates are near in time)


def _duplicates(records: list[FaceRecord], threshold: float, progress: ProgressFn) -> list[int]:
    kept: list[np.ndarray] = []
    dups = []
    for i, f in enumerate(records):
        thumb = _thumbnail(f.aligned_path)
        recent = np.stack(kept[-_DUP_WINDOW:]) if kept else None
        if recent is not None and float(np.min(np.mean(np.abs(recent - thumb), axis=(1, 2)))) < threshold:
            dups.append(f.id)
        else:
            kept.append(thumb)
        progress(i + 1, len(records))
    return dups


def embed_missing(ws: Workspace, records: list[FaceRecord], *, store: bool, progress: ProgressFn = no_progress
                  ) -> dict[int, np.ndarray]:
    """Identity embeddings of every face, computing the missing ones from the aligned images."""
    from doppel.extract import backends

    out = {f.id: f.embedding for f in records if f.embedding is not None}
    todo = [f for f in records if f.embedding is None]
    if todo:
        embedder = backends.embedder("dlib-resnet")
        for i, f in enumerate(todo):
            lm = transform_points(f.landmarks_smooth, f.transform)
            out[f.id] = embedder.embed(read_image(f.aligned_path), lm)
            progress(i + 1, len(todo))
        if store:
            ws.faces.set_embeddings({f.id: out[f.id] for f in todo})
    return out


def prune(ws: Workspace, identity: str, criteria: PruneCriteria, *, dry_run: bool = False,
          progress: ProgressFn = no_progress) -> dict[str, Any]:
    """Exclude (reversibly) faces that are blurry, near-duplicates or someone else."""
    records = ws.faces.of(identity)
    reason: dict[int, str] = {}
    if criteria.blur_below is not None:
        for f in records:
            if f.blur < criteria.blur_below:
                reason[f.id] = "blur"
    rest = [f for f in records if f.id not in reason]
    if criteria.outliers is not None and rest:
        emb = embed_missing(ws, rest, store=not dry_run, progress=progress)
        centre = np.median(np.stack([emb[f.id] for f in rest]), axis=0)
        for f in rest:
            if float(np.linalg.norm(emb[f.id] - centre)) > criteria.outliers:
                reason[f.id] = "outlier"
        rest = [f for f in rest if f.id not in reason]
    if criteria.duplicates is not None and rest:
        for fid in _duplicates(rest, criteria.duplicates, progress):
            reason[fid] = "duplicate"
    if not dry_run and reason:
        ws.faces.exclude(reason)
    counts = {r: sum(1 for v in reason.values() if v == r) for r in REASONS}
    return {"identity": identity, "considered": len(records), "pruned": len(reason), "by_reason": counts,
            "remaining": len(records) - len(reason), "dry_run": dry_run,
            "criteria": {"blur_below": criteria.blur_below, "duplicates": criteria.duplicates,
                         "outliers": criteria.outliers}}


def unprune(ws: Workspace, identity: str, *, reason: str | None = None) -> dict[str, Any]:
    """Include again the faces pruned (for ``reason``, or for any reason)."""
    if reason is not None and reason not in REASONS:
        raise ConfigError(f"unknown prune reason {reason!r}; expected one of {', '.join(REASONS)}")
    return {"identity": identity, "restored": ws.faces.include(identity, reason), "reason": reason}
