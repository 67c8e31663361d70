"""The built-in demo: the whole job end to end on public-domain material the install ships.

:func:`run_demo` reads top to bottom, one method per step of :class:`_Demo`:

1. ``clips``: two short synthetic clips (:mod:`doppel.demo.media`): the destination person
   (astronaut, Eileen Collins) whose head motion is kept, and the source person (Grace Hopper)
   whose face is put in; each moves and is lit differently.
2. ``consent``: one consent record per identity, basis ``public-domain-demo``.
3. ``extract``: both people's faces into a fresh workspace.
4. ``train``: the ``cpu`` preset's model, started from the base model doppel ships, for a fixed time budget
   (its last quarter trains the source's detail network, as the preset does).
5. ``merge``: the source face into every frame of the destination clip, watermarked.
6. ``verify``: read the output's provenance back (watermark, content credentials).
7. ``eval``: identity, expression, pose, detail, steadiness, gaze and seam metrics, and the contact sheet.

Everything lands in one folder: ``output.mp4``, ``contact_sheet.png``, ``eval.json``,
``verify.json``, ``summary.json``, the clips and the workspace.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from doppel.core.errors import ConfigError, InputError
from doppel.core.progress import ProgressFn, no_progress
from doppel.demo.media import Motion, make_demo_clip
from doppel.io.atomic import write_text_atomic
from doppel.merge.settings import MergeSettings
from doppel.provenance.consent import add_consent
from doppel.provenance.verify import verify_file
from doppel.store import Workspace
from doppel.train import bases
from doppel.train.config import PRESETS, model_config, train_config
from doppel.train.loop import RunSpec, StepInfo
from doppel.workflow.evaluate import evaluate, request_for_render
from doppel.workflow.extract import extract
from doppel.workflow.merge import MergeRequest, merge
from doppel.workflow.train import default_base, detail_plan, late_share, train
from doppel.workflow.workspace import create_workspace

log = logging.getLogger(__name__)

MARKER = "doppel-demo.json"  # written first: marks a folder as a demo's own, so a rerun may clear it
MODEL = "demo"


@dataclass(frozen=True)
class Person:
    identity: str
    portrait: str
    subject: str


DESTINATION = Person("astronaut", "astronaut", "Eileen Collins, NASA portrait (public domain, via scikit-image)")
SOURCE = Person("hopper", "grace_hopper", "Grace Hopper, US Navy portrait (public domain, via matplotlib)")
SCOPE = "doppel's built-in demonstration: a synthetic clip made from this portrait, swapped and evaluated"


@dataclass(frozen=True)
class DemoConfig:
    """The demo's settings. ``minutes`` is the training budget; the rest takes about 1-2 minutes
    more on two CPU cores. The model is the ``cpu`` preset's network, started from the base model
    doppel ships (``base``; :mod:`doppel.train.bases`), as ``doppel train`` starts a new model; with a
    much shorter EMA than the preset's, since minutes of fine-tuning are a few hundred steps."""

    out: Path
    minutes: float = 10.0
    seconds: float = 4.0
    width: int = 640
    height: int = 360
    resolution: int = 96
    arch: str = "liae"
    lr: float = 2e-4
    ema_decay: float = 0.9
    random_warp: bool = False
    batch: int = 8
    base: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.minutes <= 600:
            raise ConfigError(f"--minutes must be within (0, 600], got {self.minutes}")
        if not 1 <= self.seconds <= 60:
            raise ConfigError(f"clip length must be within 1..60 s, got {self.seconds}")


@dataclass
class DemoReport:
    out: str
    output: str
    contact_sheet: str | None
    eval_report: str
    verify_report: str
    seconds: float
    stages: dict[str, float] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    merge: dict[str, Any] = field(default_factory=dict)
    verify: dict[str, Any] = field(default_factory=dict)
    eval: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


Stage = Callable[[str], ProgressFn]
"""Called when a step starts with its name; returns the progress callback for that step."""


def _quiet(name: str) -> ProgressFn:
    return no_progress


def prepare_out(out: Path) -> None:
    """Make ``out`` ready: create it, or clear an earlier demo's folder; refuse any other non-empty folder."""
    if out.exists() and not out.is_dir():
        raise InputError("exists and is not a folder; choose another --out", path=out)
    if out.is_dir() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise InputError("is not empty and not an earlier demo's folder; choose another --out", path=out)
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def run_demo(config: DemoConfig, *, stage: Stage = _quiet, note: Callable[[str], None] = log.info) -> DemoReport:
    """Run the demo into ``config.out``; see the module docstring."""
    return _Demo(config, stage, note).run()


class _Demo:
    def __init__(self, cfg: DemoConfig, stage: Stage, note: Callable[[str], None]) -> None:
        self.cfg, self.stage, self.note = cfg, stage, note
        self.out = cfg.out
        self.times: dict[str, float] = {}

    def _timed(self, name: str, fn: Callable[[ProgressFn], Any]) -> Any:
        progress = self.stage(name)
        t = time.perf_counter()
        result = fn(progress)
        self.times[name] = round(time.perf_counter() - t, 2)
        log.info("demo %s: %.1f s", name, self.times[name])
        return result

    def run(self) -> DemoReport:
        start = time.perf_counter()
        prepare_out(self.out)
        write_text_atomic(self.out / MARKER, json.dumps({"config": asdict(self.cfg)}, default=str, indent=2) + "\n")
        with create_workspace(self.out / "workspace") as ws:
            clips = self._timed("clips", self.clips)
            self._timed("consent", lambda p: self.consent(ws))
            self._timed("extract", lambda p: self.extract(ws, clips, p))
            train = self._timed("train", lambda p: self.train(ws, p))
            merge = self._timed("merge", lambda p: self.merge(ws, clips[DESTINATION.identity], p))
            verify = self._timed("verify", lambda p: self.verify(ws, Path(merge["output"]), p))
            ev = self._timed("eval", lambda p: self.evaluate(ws, merge["render_uid"], p))
        report = DemoReport(
            out=str(self.out), output=merge["output"], contact_sheet=ev.get("sheet"),
            eval_report=str(self.out / "eval.json"), verify_report=str(self.out / "verify.json"),
            seconds=round(time.perf_counter() - start, 1), stages=self.times, train=train, merge=merge,
            verify=verify, eval=ev)
        write_text_atomic(self.out / "summary.json", json.dumps(report.to_dict(), indent=2, default=str) + "\n")
        return report

    # 1 ------------------------------------------------------------------------------------------
    def clips(self, progress: ProgressFn) -> dict[str, Path]:
        folder = self.out / "clips"
        folder.mkdir(exist_ok=True)
        made = {}
        fps = 25
        # The two people move differently, so the output shows whose motion it kept.
        motions = {DESTINATION.identity: Motion(period=2.5 * fps),
                   SOURCE.identity: Motion(rotation=10.0, shift=0.05, zoom=0.08, light=0.2, period=1.7 * fps)}
        for n, person in enumerate((DESTINATION, SOURCE), 1):
            made[person.identity] = make_demo_clip(
                folder / f"{person.portrait}.mp4", name=person.portrait, seconds=self.cfg.seconds,  # type: ignore[arg-type]
                width=self.cfg.width, height=self.cfg.height, fps=fps, motion=motions[person.identity], seed=n)
            progress(n, 2)
        return made

    # 2 ------------------------------------------------------------------------------------------
    def consent(self, ws: Workspace) -> None:
        for person in (DESTINATION, SOURCE):
            add_consent(ws, person.identity, person.subject, SCOPE, "public-domain-demo")

    # 3 ------------------------------------------------------------------------------------------
    def extract(self, ws: Workspace, clips: dict[str, Path], progress: ProgressFn) -> None:
        for identity, path in clips.items():
            extract(ws, identity, path, progress=progress)

    # 4 ------------------------------------------------------------------------------------------
    def train(self, ws: Workspace, progress: ProgressFn) -> dict[str, Any]:
        cfg = self.cfg
        mcfg = model_config(PRESETS["cpu"].model, resolution=cfg.resolution, arch=cfg.arch)
        tcfg = train_config(batch=cfg.batch, lr=cfg.lr, ema_decay=cfg.ema_decay, random_warp=cfg.random_warp,
                            preview_minutes=max(1.0, cfg.minutes / 4), checkpoint_minutes=max(1.0, cfg.minutes))
        spec = RunSpec(name=MODEL, model=mcfg, train=tcfg, src=(SOURCE.identity,), dst=(DESTINATION.identity,),
                       preset="cpu", minutes=cfg.minutes, late=late_share("cpu"),
                       base=default_base(ws, MODEL, mcfg, pretrain=False) if cfg.base else None)
        minutes = cfg.minutes

        def timed(done: int, total: int | None, /) -> None:  # the budget is time, so report seconds
            progress(min(int(time.perf_counter() - t0), int(minutes * 60)), int(minutes * 60))

        t0 = time.perf_counter()
        last = [0.0]

        def on_step(info: StepInfo) -> None:  # the bar counts budget seconds; say what they are buying
            if time.perf_counter() - last[0] >= 60:
                last[0] = time.perf_counter()
                loss = info.losses.get("loss")
                self.note(f"train: step {info.step}, {info.images_per_s:.1f} images/s"
                          + (f", loss {loss:.3f}" if loss is not None else ""))

        # As `doppel train` does with the preset: the detail network on the last part of the budget.
        result = train(ws, spec, detail=detail_plan(spec.preset), progress=timed, on_step=on_step)
        return {"model": MODEL, "steps": result.step, "seconds": round(result.seconds, 1),
                "detail_steps": result.detail.steps if result.detail is not None else None,
                "images_per_s": round(result.images_per_s, 2), "losses": result.losses,
                "preview": str(result.preview) if result.preview else None, "precision": result.precision,
                "resolution": cfg.resolution, "arch": cfg.arch, "base": bases.label(spec.base) if spec.base else None}

    # 5 ------------------------------------------------------------------------------------------
    def merge(self, ws: Workspace, dst_clip: Path, progress: ProgressFn) -> dict[str, Any]:
        # The landmark hull alone as the matte: a model trained for minutes has not yet learned a
        # trustworthy mask of its own (merge's default multiplies the two).
        settings = MergeSettings(mask_mode="hull")
        report = merge(ws, MergeRequest(input=dst_clip, output=self.out / "output.mp4", model=MODEL,
                                        settings=settings), progress=progress)
        keep = ("render_uid", "output", "frames", "swapped", "passthrough", "fps", "seconds", "flicker_ratio",
                "provenance")
        data = report.to_dict()
        return {k: data[k] for k in keep if k in data}

    # 6 ------------------------------------------------------------------------------------------
    def verify(self, ws: Workspace, output: Path, progress: ProgressFn) -> dict[str, Any]:
        data = verify_file(output, workspace=ws.root, progress=progress).to_dict()
        write_text_atomic(self.out / "verify.json", json.dumps(data, indent=2, default=str) + "\n")
        return data

    # 7 ------------------------------------------------------------------------------------------
    def evaluate(self, ws: Workspace, render_uid: str, progress: ProgressFn) -> dict[str, Any]:
        request = request_for_render(ws, render_uid)
        request = dataclasses.replace(request, sheet=self.out / "contact_sheet.png")
        report = evaluate(ws, request, progress=progress)
        report.write(self.out / "eval.json")
        data = report.to_dict()
        data.pop("per_frame")
        return data
