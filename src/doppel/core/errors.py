"""Typed errors. Each names the bad value, what was expected and, where possible, how to fix it.

Only the CLI turns these into exit codes; library code raises and never exits.
"""

from __future__ import annotations

from pathlib import Path


class DoppelError(Exception):
    """Base class of every error doppel reports to a user as one line."""

    exit_code = 2

    def __init__(self, message: str, *, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.message = f"{path}: {message}" if path is not None else message
        super().__init__(self.message)


class InputError(DoppelError):
    """A file given by the user is missing, unreadable or not what was expected."""


class MediaError(InputError):
    """A media file cannot be opened or decoded."""


class WorkspaceError(DoppelError):
    """The workspace is missing, not a workspace, or its database is damaged."""


class NoFaceError(DoppelError):
    """No usable face was found where one was required."""


class ConfigError(DoppelError):
    """A setting is out of range or unknown."""


class RefusedError(DoppelError):
    """doppel refuses this on purpose (no consent record, explicit content, ...)."""

    exit_code = 3
