"""The one convention for settings: a frozen pydantic model that forbids unknown keys and raises
:class:`~doppel.core.errors.ConfigError` naming the bad setting (by its command-line flag where it
has one) instead of pydantic's multi-line report.

Each stage has one such object (``ExtractConfig``, ``ModelConfig`` + ``TrainConfig``,
``MergeSettings``), merged once in the workflow layer from defaults, then a preset or file, then
flags, passed down explicitly, and written beside the stage's outputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from doppel.core.errors import ConfigError


def short_repr(value: Any, limit: int = 60, *, quote: bool = True) -> str:
    """``repr(value)`` (``str`` with ``quote=False``), cut to ``limit`` characters: an error names the bad
    value, never echoes a huge one."""
    text = repr(value) if quote else str(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


class Settings(BaseModel):
    """Base of every settings object. ``FLAGS`` maps a field to the command-line flag that sets it."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    FLAGS: ClassVar[Mapping[str, str]] = {}

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigError(self.explain(exc)) from None

    # Settings nested in settings (MergeSettings.mask_polygons) are validated by pydantic without this
    # __init__, so their errors reach the outer object's explain with the full path to the bad value.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @classmethod
    def validated(cls, data: Mapping[str, Any]) -> Self:
        """``data`` checked and typed (raises :class:`ConfigError`)."""
        return cls(**dict(data))

    @classmethod
    def explain(cls, exc: ValidationError) -> str:
        """One line naming each bad setting, the value given and what was expected."""
        parts = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or cls.__name__
            name = cls.FLAGS.get(key, key)
            if err["type"] == "extra_forbidden":
                parts.append(f"unknown setting {key!r} (known: {', '.join(cls.model_fields)})")
            else:
                parts.append(f"{name}={short_repr(err.get('input'))}: {err['msg']}")
        return f"bad {cls.__name__} setting: " + "; ".join(parts)

    def with_changes(self, changes: Mapping[str, Any]) -> Self:
        """A validated copy with ``changes`` applied."""
        return self.validated({**self.model_dump(), **dict(changes)})
