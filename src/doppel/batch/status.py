"""Where a batch stands: per shot and for the whole batch, frames done, frames/s and time left.

The driver keeps a :class:`BatchStatus` up to date and hands a copy to its progress callback; it also
stores it in the batch's ``jobs`` row now and then, so ``doppel batch status`` in another terminal (or
after a crash) reads the same thing. Rates count only frames merged in this run: chunks finished by an
earlier run (``reused``) are done but took no time now.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

ShotState = Literal["pending", "preparing", "merging", "joining", "evaluating", "done", "skipped", "failed",
                    "interrupted"]
FINISHED: tuple[ShotState, ...] = ("done", "skipped")
OVER: tuple[ShotState, ...] = ("done", "skipped", "failed", "interrupted")


@dataclass
class ShotStatus:
    name: str
    output: str
    state: ShotState = "pending"
    frames: int = 0  # frames of the shot (0 until known)
    done: int = 0  # frames merged (reused ones included)
    reused: int = 0  # frames of chunks an earlier run finished
    chunks: int = 0
    chunks_done: int = 0
    render: str | None = None  # render uid
    started: float | None = None  # epoch seconds
    finished: float | None = None
    error: str | None = None
    running_on: dict[str, str] = field(default_factory=dict)  # chunk -> host:pid merging it now
    eval: dict[str, Any] | None = None  # the eval report's and contact sheet's paths
    report: dict[str, Any] | None = None  # the merge report (the keys of ``doppel merge --json``)

    @property
    def fps(self) -> float | None:
        """Frames merged per second in this run (None before the first frame)."""
        if self.started is None or self.state == "pending" or self.done <= self.reused:
            return None
        seconds = (self.finished or time.time()) - self.started
        return (self.done - self.reused) / seconds if seconds > 0 else None

    @property
    def eta(self) -> float | None:
        """Seconds left at the current rate (0 once over, None while unknown)."""
        if self.state in OVER:
            return 0.0
        rate = self.fps
        return max(0.0, self.frames - self.done) / rate if rate and self.frames else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "fps": _round(self.fps), "eta_s": _round(self.eta)}


@dataclass
class BatchStatus:
    jobfile: str
    workspace: str
    runner: str  # "in-process" or "ray <address>"
    workers: int
    shots: list[ShotStatus]
    started: float = field(default_factory=time.time)
    finished: float | None = None
    overheads: dict[str, float] = field(default_factory=dict)  # seconds: scheduling, model_load, join, ...

    def shot(self, name: str) -> ShotStatus:
        return next(s for s in self.shots if s.name == name)

    @property
    def frames(self) -> int:
        return sum(s.frames for s in self.shots)

    @property
    def done(self) -> int:
        return sum(s.done for s in self.shots)

    @property
    def fps(self) -> float | None:
        merged = sum(s.done - s.reused for s in self.shots if s.state != "skipped")
        seconds = (self.finished or time.time()) - self.started
        return merged / seconds if merged and seconds > 0 else None

    @property
    def eta(self) -> float | None:
        if all(s.state in OVER for s in self.shots):
            return 0.0
        rate = self.fps
        left = sum(max(0, s.frames - s.done) for s in self.shots if s.state not in OVER)
        return left / rate if rate else None

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.shots:
            out[s.state] = out.get(s.state, 0) + 1
        return out

    @property
    def ok(self) -> bool:
        return all(s.state in FINISHED for s in self.shots)

    def to_dict(self) -> dict[str, Any]:
        return {"jobfile": self.jobfile, "workspace": self.workspace, "runner": self.runner, "workers": self.workers,
                "started": self.started, "finished": self.finished, "frames": self.frames, "done": self.done,
                "fps": _round(self.fps), "eta_s": _round(self.eta), "states": self.counts(), "ok": self.ok,
                "overheads": {k: round(v, 3) for k, v in sorted(self.overheads.items())},
                "shots": [s.to_dict() for s in self.shots]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BatchStatus:
        """Back from :meth:`to_dict` (what the ``jobs`` row holds); derived keys are dropped."""
        shots = []
        for s in data.get("shots", []):
            known = {k: v for k, v in s.items() if k in ShotStatus.__dataclass_fields__}
            shots.append(ShotStatus(**known))
        return cls(jobfile=data["jobfile"], workspace=data["workspace"], runner=data["runner"],
                   workers=int(data["workers"]), shots=shots, started=float(data["started"]),
                   finished=data.get("finished"), overheads=dict(data.get("overheads", {})))


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def clock(seconds: float | None) -> str:
    """``H:MM:SS`` (``-`` when unknown)."""
    if seconds is None:
        return "-"
    s = round(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


COLUMNS = ("shot", "state", "frames", "frames/s", "ETA", "render", "output / error")


def table_rows(status: BatchStatus) -> list[tuple[str, ...]]:
    """One row per shot and a total, for a summary table (see :data:`COLUMNS`)."""
    rows: list[tuple[str, ...]] = []
    for s in status.shots:
        fps = f"{s.fps:.1f}" if s.fps else "-"
        frames = f"{s.done}/{s.frames}" + (f" ({s.reused} reused)" if s.reused else "")
        rows.append((s.name, s.state, frames, fps, clock(s.eta), s.render or "-", s.error or s.output))
    fps = f"{status.fps:.1f}" if status.fps else "-"
    states = ", ".join(f"{n} {k}" for k, n in sorted(status.counts().items()))
    rows.append(("all", states, f"{status.done}/{status.frames}", fps, clock(status.eta), "", status.runner))
    return rows
