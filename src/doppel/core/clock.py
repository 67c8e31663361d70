"""Timestamps as doppel writes them everywhere: UTC, ISO 8601, to the second."""

from __future__ import annotations

import datetime as dt


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
