"""Names people give things that doppel stores: identities (also folder names, ``WS/facesets/NAME``) and
file paths (text in the workspace database)."""

from __future__ import annotations

import re
from pathlib import Path

from doppel.core.errors import ConfigError, InputError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_identity_name(name: str) -> str:
    """An identity name: 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"identity name {name!r} must be 1-64 letters, digits, '.', '_' or '-', "
                          "starting with a letter or digit")
    return name


def check_path_name(path: str | Path) -> None:
    """The workspace records every clip's path as text: refuse a file name that is not valid UTF-8 (it
    could not be stored) before any work is done."""
    try:
        str(Path(path).resolve()).encode("utf-8")
    except UnicodeEncodeError:
        shown = str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        raise InputError(f"{shown}: file name is not valid UTF-8; rename the file") from None
