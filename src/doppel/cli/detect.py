"""`doppel detect FILE...`: was a face replaced? `doppel detect train WS`: fine-tune on a studio's own footage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from typer.core import TyperGroup

from doppel.cli.common import JsonOpt, console, emit_json, progress_bar
from doppel.detect.infer import MAX_FRAMES, Detector
from doppel.detect.train import TrainSettings
from doppel.provenance.verify import payload_text
from doppel.store import Workspace
from doppel.workflow.detect import check_file, find_detector, finetune

CHECK = "check"


class _DefaultCheck(TyperGroup):
    """``doppel detect FILE...`` means ``doppel detect check FILE...``; ``doppel detect train WS`` trains."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # typer's own vendored click Context
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = [CHECK, *args]
        return super().parse_args(ctx, args)


app = typer.Typer(name="detect", cls=_DefaultCheck, no_args_is_help=True,
                  help="Was a face replaced? A detector trained on real faces only (`doppel detect FILE...`), "
                       "and `doppel detect train WS` to fine-tune it on your own real footage.")


def check(
    files: list[Path] = typer.Argument(..., help="Videos, images or image sequences (a folder or a %06d/#### "
                                                 "pattern)."),
    heatmap: Path | None = typer.Option(None, "--heatmap", help="Write heatmaps of where the evidence is (the "
                                                                "frames that decide the score) into this folder."),
    detector: Path | None = typer.Option(None, "--detector", help="A detector folder (default: doppel's own; "
                                                                  "`doppel detect train` writes WS/detectors/NAME)."),
    frames: int = typer.Option(MAX_FRAMES, "--frames", min=1, help="Frames to read, spread over each clip."),
    json_out: bool = JsonOpt,
) -> None:
    """Score files: the probability that a face was replaced, per frame and per clip.

    The clip's score is compared with a threshold chosen on real footage (at most 5% of real clips reach it).
    doppel's watermark is shown beside it (it is not an input to the detector).

    Exit status: 0 = no file judged fake; 1 = a file judged fake; 2 = a file could not be read.
    """
    det = Detector.load(find_detector(detector))
    reports: list[dict[str, Any]] = []
    for file in files:
        with progress_bar(f"detect {file.name}", enabled=not json_out) as progress:
            reports.append(check_file(file, det, heatmap_dir=heatmap, max_frames=frames, progress=progress))
    if json_out:
        emit_json(reports if len(reports) > 1 else reports[0])
    else:
        for r in reports:
            _print(r)
    if any(r["error"] for r in reports):
        raise typer.Exit(2)
    if any(r["fake"] for r in reports):
        raise typer.Exit(1)


def _print(r: dict[str, Any]) -> None:
    console.print(f"[bold]{escape(r['file'])}[/bold]" + (escape(f": {r['error']}") if r["error"] else ""))
    if r["error"]:
        return
    if not r.get("faces_found"):
        console.print("  detector:  no face found; nothing judged")
    else:
        verdict = "LIKELY REPLACED" if r["fake"] else "no sign of a replaced face"
        console.print(f"  detector:  {verdict} (clip score {r['clip_score']:.2f}, threshold {r['threshold']:.2f}; "
                      f"{r['faces_found']} faces in {len(r['frames'])} frames)")
        top = ", ".join(f"#{i}" for i in r["top_frames"][:5])
        console.print(f"  most suspicious frames: {top}")
    wm = r.get("watermark", {})
    console.print("  watermark: " + (f"doppel mark FOUND, {payload_text(wm)}" if wm.get("detected")
                                     else "no doppel mark") + f" (verify: {wm.get('verdict')})")
    for path in r.get("heatmaps", []):
        console.print(escape(f"  heatmap: {path}"))


def train(
    workspace: Path = typer.Argument(..., help="The workspace whose real footage (extracted faces) to train on."),
    name: str = typer.Option("studio", "--name", help="The detector's name: written to WS/detectors/NAME."),
    identity: list[str] = typer.Option([], "--identity", help="Only these identities' faces (repeatable; default: "
                                                              "all). Use real footage only, never swaps."),
    steps: int = typer.Option(300, "--steps", min=1, help="Training steps (batches of 32)."),
    base: Path | None = typer.Option(None, "--base", help="The detector to start from (default: doppel's own)."),
    json_out: bool = JsonOpt,
) -> None:
    """Fine-tune the detector on a workspace's own real footage.

    Trains on the workspace's extracted real faces (with fakes made from them) and chooses the threshold on the
    last quarter of each clip, which it does not train on. Use it with `doppel detect --detector
    WS/detectors/NAME FILE`."""
    with Workspace.open(workspace) as ws, progress_bar("fine-tuning", "steps", enabled=not json_out) as progress:
        report = finetune(ws, name, identities=identity or None, base=base,
                          settings=TrainSettings(steps=steps, lr=2e-4), progress=progress)
    if json_out:
        emit_json(report.to_dict())
    else:
        console.print(escape(f"detector {report.name}: {report.folder} ({report.faces} faces of "
                             f"{', '.join(report.identities)}, {report.steps} steps, {report.seconds:.0f} s); "
                             f"threshold {report.threshold:.3f} on {report.real_clips} real clips "
                             f"(false positives {report.fpr_on_real:.0%})"))
