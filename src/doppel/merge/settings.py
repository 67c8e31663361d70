"""Merge settings: one frozen, validated object, with per-frame and per-range overrides.

Each setting's allowed values are listed once, as a ``Literal`` beside what they name (the colour
and blend tables, the mask modes of :mod:`doppel.ops.mask`, the face regions of
:mod:`doppel.ops.face`), and reach the CLI (``--set key=value``), validation, the stored render
record and the review app through the fields and :data:`CHOICES`.

Lengths (``mask_erode``, ``mask_blur``) are in pixels of a 256 px aligned crop and scale with the
model's resolution, so a setting means the same thing for a 128 px and a 256 px model.
"""

from __future__ import annotations

import hashlib
import json
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError

from doppel.core.config import Settings, short_repr
from doppel.core.errors import ConfigError
from doppel.merge.blend import BlendMode
from doppel.merge.colour import ColourMode
from doppel.ops.face import Region
from doppel.ops.mask import MaskMode
from doppel.store.records import OverrideRecord, RenderRecord

OcclusionMode = Literal["off", "detect", "exclude", "segment"]
GlassesMode = Literal["plate", "source"]

REFERENCE_SIZE = 256  # crop size that the pixel lengths below refer to

Coordinate = Annotated[float, Field(ge=-1.0, le=2.0)]


class MaskPolygon(Settings):
    """A polygon drawn in review to add to (``include``) or cut from (``exclude``) the matte.

    ``points`` are ``(x, y)`` in aligned-crop coordinates divided by the crop size (0..1 covers the
    crop), so a polygon follows the face from frame to frame and fits any model resolution.
    """

    mode: Literal["include", "exclude"]
    points: tuple[tuple[Coordinate, Coordinate], ...] = Field(min_length=3, max_length=256)


class MergeSettings(Settings):
    """How a swapped face is put into a frame. Frozen; build a changed copy with :meth:`with_changes`."""

    mask_mode: MaskMode = Field("product", description="hull: landmark hull; learned: the model's mask; "
                                "product: both multiplied (what both agree is face)")
    mask_region: Region = Field("face", description="which part of the face to replace, from the landmarks")
    mask_erode: int = Field(8, ge=-64, le=64, description="shrink (>0) or grow (<0) the mask, px at 256")
    mask_blur: int = Field(16, ge=0, le=128, description="feather width of the mask edge, px at 256")
    colour: ColourMode = Field("rct", description="colour transfer from the destination face to the swap")
    blend: BlendMode = Field("alpha", description="alpha: feathered matte; poisson: seamless clone")
    sharpen: float = Field(0.0, ge=0.0, le=2.0, description="unsharp-mask amount on the swapped face")
    face_scale: float = Field(1.0, ge=0.8, le=1.2, description="scale of the swapped face about its centre")
    keep_original: bool = Field(False, description="leave this frame's face as it was")
    mask_polygons: tuple[MaskPolygon, ...] = Field((), max_length=32,
                                                   description="include/exclude polygons applied to the matte "
                                                   "(crop coordinates in [0, 1]; drawn in review)")
    smoothing: bool = Field(True, description="smooth colour and mask over time; off resets (use at cuts)")
    colour_smoothing: float = Field(0.7, ge=0.0, le=0.98,
                                    description="weight of the past in the colour statistics (0 = none)")
    face_smoothing: float = Field(0.7, ge=0.0, le=0.95,
                                  description="weight of the past swapped face where the destination is still "
                                  "(motion-aware; 0 = none)")
    mask_smoothing: float = Field(0.5, ge=0.0, le=0.98,
                                  description="weight of the past matte in the matte (0 = none)")
    occlusion: OcclusionMode = Field("segment", description="segment: the face segmenter keeps what covers the "
                                     "plate's face (hands, objects, hair) on top; off; detect: the colour/edge "
                                     "heuristic scores only; exclude: the heuristic also cuts what it finds out")
    glasses: GlassesMode = Field("plate", description="with occlusion=segment: plate keeps the plate's glasses on "
                                 "top of the swap; source lets the swapped face (and its glasses) replace them")
    occluder_margin: int = Field(2, ge=0, le=32,
                                 description="with occlusion=segment: keep the swap this far from the edges of "
                                 "what covers the face, px at 256")
    occlusion_threshold: float = Field(0.12, ge=0.0, le=1.0,
                                       description="occlusion score above which a frame is flagged")
    shot_cut_threshold: float = Field(0.45, ge=0.05, le=2.0,
                                      description="histogram distance between frames that counts as a cut")

    @classmethod
    def explain(cls, exc: ValidationError) -> str:
        """``bad merge settings: key=value: why``, the value as typed (``colour=sepia``): what the CLI
        and the review page show."""
        parts = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "settings"
            if err["type"] == "extra_forbidden":
                parts.append(f"unknown setting {key!r} (known: {', '.join(cls.model_fields)})")
            else:
                parts.append(f"{key}={short_repr(err.get('input'), quote=False)}: {err['msg']}")
        return "bad merge settings: " + "; ".join(parts)

    def to_json(self) -> str:
        return json.dumps(self.model_dump(), sort_keys=True, separators=(",", ":"))

    def hash(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]


def _choices() -> dict[str, tuple[Any, ...]]:
    out: dict[str, tuple[Any, ...]] = {}
    for name, field in MergeSettings.model_fields.items():
        if typing.get_origin(field.annotation) is Literal:
            out[name] = typing.get_args(field.annotation)
    return out


CHOICES: dict[str, tuple[Any, ...]] = _choices()  # setting -> allowed values, for CLI, UI and docs


def schema() -> dict[str, Any]:
    """JSON schema of the settings (types, ranges, defaults, descriptions): what a UI renders."""
    return MergeSettings.model_json_schema()


def validate_settings(data: Mapping[str, Any]) -> MergeSettings:
    """``data`` checked and typed (raises :class:`ConfigError`)."""
    return MergeSettings.validated(data)


def validate_partial(data: Mapping[str, Any]) -> dict[str, Any]:
    """Check a partial settings dict (an override): known keys, values in range. Returns it normalised."""
    base = MergeSettings().model_dump()
    full = validate_settings({**base, **dict(data)})
    dumped = full.model_dump(mode="json")  # JSON-ready (polygons as plain lists)
    return {k: dumped[k] for k in data}


def parse_assignment(text: str) -> tuple[str, Any]:
    """``key=value`` from the command line, the value typed by the setting's declared type."""
    if "=" not in text:
        raise ConfigError(f"expected key=value, got {text!r}")
    key, raw = (s.strip() for s in text.split("=", 1))
    field = MergeSettings.model_fields.get(key)
    if field is None:
        raise ConfigError(f"unknown setting {key!r} (known: {', '.join(MergeSettings.model_fields)})")
    if field.annotation is bool:
        lowered = raw.lower()
        if lowered not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
            raise ConfigError(f"{key}={raw!r}: expected true or false")
        return key, lowered in ("true", "1", "yes", "on")
    if field.annotation not in (int, float, str) and typing.get_origin(field.annotation) is not Literal:
        try:  # structured settings (mask_polygons) are given as JSON
            return key, json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{key}: expected a JSON value ({exc.msg})") from None
    return key, raw  # pydantic coerces numbers from strings and checks ranges


def load_settings(file: str | Path | None = None, assignments: Iterable[str] = ()) -> MergeSettings:
    """Defaults, then a JSON settings file, then ``key=value`` assignments; validated once."""
    data: dict[str, Any] = {}
    if file is not None:
        path = Path(file)
        try:
            loaded = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError("no such settings file", path=path) from None
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"not a readable JSON settings file ({exc})", path=path) from None
        if not isinstance(loaded, dict):
            raise ConfigError("settings file must hold a JSON object", path=path)
        data.update(loaded)
    for text in assignments:
        key, value = parse_assignment(text)
        data[key] = value
    return validate_settings(data)


@dataclass(frozen=True)
class Override:
    """A partial settings change for frames ``first..last`` (inclusive). Later overrides win."""

    id: int
    first: int
    last: int
    changes: dict[str, Any]

    def covers(self, frame: int) -> bool:
        return self.first <= frame <= self.last


def parse_override(text: str) -> tuple[int, int, dict[str, Any]]:
    """``FIRST[-LAST]:key=value[,key=value...]`` from the command line."""
    if ":" not in text:
        raise ConfigError(f"override {text!r}: expected FIRST[-LAST]:key=value[,key=value]")
    span, body = text.split(":", 1)
    try:
        first_s, _, last_s = span.partition("-")
        first = int(first_s)
        last = int(last_s) if last_s else first
    except ValueError:
        raise ConfigError(f"override {text!r}: frame range {span!r} is not FIRST or FIRST-LAST") from None
    if first < 0 or last < first:
        raise ConfigError(f"override {text!r}: frame range must be 0 <= FIRST <= LAST")
    changes = dict(parse_assignment(part) for part in body.split(",") if part.strip())
    return first, last, validate_partial(changes)


class FrameSettings:
    """Resolves the settings of each frame from a base and a list of overrides (cached per combination)."""

    def __init__(self, base: MergeSettings, overrides: Iterable[Override] = ()) -> None:
        self.base = base
        self.overrides = sorted(overrides, key=lambda o: o.id)
        self._cache: dict[tuple[int, ...], MergeSettings] = {}

    def at(self, frame: int) -> MergeSettings:
        ids = tuple(o.id for o in self.overrides if o.covers(frame))
        if not ids:
            return self.base
        found = self._cache.get(ids)
        if found is None:
            changes: dict[str, Any] = {}
            for o in self.overrides:
                if o.id in ids:
                    changes.update(o.changes)
            found = self._cache[ids] = self.base.with_changes(changes)
        return found


def frame_settings_of(render: RenderRecord, overrides: Iterable[OverrideRecord]) -> FrameSettings:
    """Per-frame settings of a stored render: its base settings with its stored overrides, validated."""
    return FrameSettings(validate_settings(render.settings),
                         [Override(o.id, o.first, o.last, validate_partial(o.changes)) for o in overrides])
