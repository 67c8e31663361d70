"""Edits made in review, turned into merge overrides: settings for frames or ranges, and mask polygons.

Polygons are drawn on a frame in frame pixels; they are stored in aligned-crop coordinates of
that frame's face (see :class:`doppel.merge.settings.MaskPolygon`) so that, carried forward to
the following frames, they follow the face. A polygon edit at frame ``f`` covers ``f`` up to the
frame before the next polygon edit (or the end of the render): "carried forward until changed".
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from doppel.core.errors import ConfigError, InputError
from doppel.merge.settings import validate_partial
from doppel.ops.align import invert, transform_points
from doppel.store import Workspace
from doppel.store.records import FaceRecord, RenderRecord
from doppel.workflow.merge import add_override, frame_settings
from doppel.workflow.models import model_of

EDITABLE = ("mask_erode", "mask_blur", "colour", "blend", "face_scale", "keep_original")
MAX_POLYGONS, MAX_POINTS = 32, 256  # what MaskPolygon and MergeSettings accept


def frame_number(value: Any, what: str, frame_count: int) -> int:
    """A frame number from a request: a JSON integer in ``0..frame_count-1`` (not a float, bool or string)."""
    if type(value) is not int or not 0 <= value < frame_count:
        shown = repr(value)[:40]
        raise ConfigError(f"{what} must be an integer frame number in 0..{frame_count - 1}, got {shown}")
    return value


def frame_face(ws: Workspace, render: RenderRecord, frame: int) -> FaceRecord | None:
    """The destination face merged into ``frame`` of the render, if any."""
    model = model_of(ws, render)
    if model.dst_identity is None or ws.identities.id_of(model.dst_identity) is None:
        return None
    for face in ws.faces.of(model.dst_identity, clip_id=render.clip_id, include_excluded=True):
        if face.frame_index == frame:
            return face
    return None


def to_crop(points: np.ndarray, face: FaceRecord) -> np.ndarray:
    """Frame pixels ``(N, 2)`` -> the face's crop coordinates divided by the crop size."""
    return transform_points(points, face.transform) / float(face.size)


def to_frame(points: np.ndarray, face: FaceRecord) -> np.ndarray:
    """Inverse of :func:`to_crop`."""
    return transform_points(np.asarray(points, np.float64) * float(face.size), invert(face.transform))


def _polygon_starts(ws: Workspace, render_id: int) -> list[tuple[int, int]]:
    """``(first_frame, override id)`` of the render's polygon overrides."""
    out = []
    for o in frame_settings(ws, ws.renders.get(render_id)).overrides:
        if "mask_polygons" in o.changes:
            out.append((o.first, o.id))
    return sorted(out)


def set_polygons(ws: Workspace, render_id: int, frame: int, polygons: list[dict[str, Any]],
                 frame_count: int) -> tuple[int, int, int]:
    """Store ``polygons`` (``{"mode": "include"|"exclude", "points": [[x, y], ...]}`` in frame pixels) from
    ``frame`` until the next polygon edit. An empty list clears polygons from there. Returns
    ``(override id, first, last)``."""
    render = ws.renders.get(render_id)
    if not 0 <= frame < frame_count:
        raise ConfigError(f"frame {frame} is out of range 0..{frame_count - 1}")
    if len(polygons) > MAX_POLYGONS or any(isinstance(p, dict) and isinstance(p.get("points"), list)
                                            and len(p["points"]) > MAX_POINTS for p in polygons):
        raise ConfigError(f"at most {MAX_POLYGONS} polygons of at most {MAX_POINTS} points each")
    face = frame_face(ws, render, frame)
    if face is None and polygons:
        raise InputError(f"frame {frame} has no swapped face to draw a mask on")
    crop: list[dict[str, Any]] = []
    for poly in polygons:
        if not isinstance(poly, dict) or "points" not in poly:
            raise ConfigError("each polygon needs a mode and points")
        try:
            pts = np.asarray(poly["points"], dtype=np.float64)
        except (TypeError, ValueError):
            raise ConfigError("polygon points must be [[x, y], ...] numbers") from None
        if pts.ndim != 2 or pts.shape[1] != 2 or not np.isfinite(pts).all():
            raise ConfigError(f"polygon points must be [[x, y], ...], got shape {pts.shape}")
        assert face is not None
        crop.append({"mode": poly.get("mode"), "points": np.round(to_crop(pts, face), 5).tolist()})
    changes = validate_partial({"mask_polygons": crop})
    later = [first for first, _ in _polygon_starts(ws, render_id) if first > frame]
    last = (min(later) - 1) if later else frame_count - 1
    override_id = add_override(ws, render_id, frame, last, changes)
    return override_id, frame, last


def polygons_at(ws: Workspace, render: RenderRecord, frame: int) -> list[dict[str, Any]]:
    """The polygons in force at ``frame``, in that frame's pixels (for drawing)."""
    settings = frame_settings(ws, render).at(frame)
    if not settings.mask_polygons:
        return []
    face = frame_face(ws, render, frame)
    if face is None:
        return []
    return [{"mode": p.mode, "points": np.round(to_frame(np.asarray(p.points), face), 2).tolist()}
            for p in settings.mask_polygons]


def add_settings_override(ws: Workspace, render_id: int, first: int, last: int, changes: Any,
                          frame_count: int) -> int:
    """A validated settings override for ``first..last`` (inclusive); raises :class:`ConfigError`."""
    if not isinstance(changes, dict) or not changes:
        raise ConfigError("settings must be a non-empty object of setting: value")
    if "mask_polygons" in changes:
        raise ConfigError("mask_polygons are drawn on a frame (the polygons endpoint converts them to the face's "
                          "coordinates); they cannot be set as a plain setting")
    if not (0 <= first <= last < frame_count):
        raise ConfigError(f"frame range {first}..{last} is not within 0..{frame_count - 1}")
    return add_override(ws, render_id, first, last, validate_partial(changes))


def overrides_json(ws: Workspace, render_id: int) -> list[dict[str, Any]]:
    return [{"id": o.id, "first": o.first, "last": o.last,
             "settings": json.loads(json.dumps(o.changes, default=str))}
            for o in frame_settings(ws, ws.renders.get(render_id)).overrides]
