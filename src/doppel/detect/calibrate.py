"""The clip threshold: chosen on real footage so that at most ``max_fpr`` of real clips score at or above it.

Stored beside the weights as ``calibration.json`` (:class:`Calibration`), with the footage it was chosen
on, so a report can say what the threshold means. A clip is called fake when its score (see
:func:`doppel.detect.infer.clip_score`) is at least the threshold.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from pydantic import Field

from doppel.core.config import Settings
from doppel.core.errors import InputError
from doppel.io.atomic import write_text_atomic

CALIBRATION = "calibration.json"
MAX_FPR = 0.05


class Calibration(Settings):
    """The clip threshold and what it rests on."""

    threshold: float = Field(0.5, ge=0, le=1)
    max_fpr: float = Field(MAX_FPR, ge=0, le=1)
    real_clips: int = Field(0, ge=0)
    fpr_on_real: float = Field(0.0, ge=0, le=1)
    """The share of the calibration's real clips at or above the threshold."""
    frames_per_clip: int = Field(0, ge=0)
    source: str = ""
    """The footage the threshold was chosen on, in words."""


def threshold_for(real_scores: Sequence[float], max_fpr: float = MAX_FPR, *, margin: float = 1e-3) -> float:
    """The lowest threshold (a little above a real clip's score, or 0.5 with no clips) at which at most
    ``floor(max_fpr * n)`` of the ``n`` real clips score at or above it."""
    if not 0 <= max_fpr < 1:
        raise ValueError(f"max_fpr must be in [0, 1), got {max_fpr}")
    s = sorted((float(v) for v in real_scores), reverse=True)
    if not s:
        return 0.5
    allowed = math.floor(max_fpr * len(s) + 1e-9)
    return min(1.0, s[allowed] + margin) if allowed < len(s) else 0.0


def calibrate(real_scores: Sequence[float], *, max_fpr: float = MAX_FPR, frames_per_clip: int = 0,
              source: str = "") -> Calibration:
    t = threshold_for(real_scores, max_fpr)
    fpr = sum(v >= t for v in real_scores) / len(real_scores) if real_scores else 0.0
    return Calibration(threshold=t, max_fpr=max_fpr, real_clips=len(real_scores), fpr_on_real=fpr,
                       frames_per_clip=frames_per_clip, source=source)


def save_calibration(cal: Calibration, folder: Path) -> None:
    write_text_atomic(Path(folder) / CALIBRATION, json.dumps(cal.model_dump(), indent=2, sort_keys=True) + "\n")


def load_calibration(folder: Path) -> Calibration:
    path = Path(folder) / CALIBRATION
    try:
        return Calibration.model_validate(json.loads(path.read_text()))
    except FileNotFoundError:
        raise InputError("no calibration.json beside the detector weights; calibrate it on real footage",
                         path=path) from None
    except (ValueError, OSError) as exc:
        raise InputError(f"not a readable calibration ({str(exc).splitlines()[0]})", path=path) from None
