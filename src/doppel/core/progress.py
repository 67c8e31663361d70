"""Progress reporting from library code: a callback, never printing. The CLI draws it."""

from __future__ import annotations

from typing import Protocol


class ProgressFn(Protocol):
    def __call__(self, done: int, total: int | None, /) -> None: ...


def no_progress(done: int, total: int | None, /) -> None:
    """The default callback: report nothing."""
