"""A tiny plugin registry: explicit registration, lookup by name, a listing for tests and the CLI.

Plugins are imported and registered explicitly (never discovered by scanning folders),
so the set of plugins is exactly what the code says it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from doppel.core.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps a short name to a factory that builds a plugin of one kind."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories:
                raise ValueError(f"{self.kind} plugin {name!r} registered twice")
            self._factories[name] = factory
            return factory

        return decorator

    def create(self, name: str, **kwargs: object) -> T:
        try:
            factory = self._factories[name]
        except KeyError:
            known = ", ".join(sorted(self._factories)) or "none"
            raise ConfigError(f"unknown {self.kind} {name!r}; known: {known}") from None
        return factory(**kwargs)

    def names(self) -> list[str]:
        return sorted(self._factories)

    def __contains__(self, name: object) -> bool:
        return name in self._factories
