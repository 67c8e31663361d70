"""`doppel eval`: quality metrics of a merge against its original, a table, JSON and a contact sheet."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from doppel.cli.common import JsonOpt, console, emit_json, progress_bar
from doppel.core.errors import ConfigError
from doppel.eval.report import EvalReport, table_rows
from doppel.store import Workspace
from doppel.workflow.evaluate import build_request, default_report, evaluate, held_out_faces, self_swap
from doppel.workflow.models import find_model


def print_table(report: EvalReport) -> None:
    lost = f", face lost in {report.frames_face_lost}" if report.frames_face_lost else ""
    table = Table(title=f"{report.merged} vs {report.original}: {report.frames_compared}/{report.frames} frames "
                        f"compared{lost}, {report.frames_embedded} embedded (every {report.embed_every})")
    for col in ("metric", "merged", "original", "meaning"):
        table.add_column(col, justify="right" if col in ("merged", "original") else "left")
    for row in table_rows(report):
        table.add_row(*row)
    console.print(table)


def eval_(
    workspace: Path = typer.Argument(..., help="The workspace holding the identities' faces (and the render)."),
    render: str | None = typer.Option(None, "--render", help="A render of this workspace (id or uid): compares "
                                                              "its output with the clip it was made from."),
    original: Path | None = typer.Option(None, "--original", help="The destination clip (without --render)."),
    merged: Path | None = typer.Option(None, "--merged", help="The merged clip (without --render)."),
    src: str | None = typer.Option(None, "--src", help="Source identity (default with --render: the model's)."),
    dst: str | None = typer.Option(None, "--dst", help="Destination identity (default with --render: the model's)."),
    out: Path | None = typer.Option(None, "--out", help="JSON report to write (default: MERGED.eval.json)."),
    sheet: Path | None = typer.Option(None, "--sheet", help="Contact sheet PNG (default: MERGED.eval.png)."),
    embed_every: int | None = typer.Option(None, "--embed-every", min=0,
                                           help="Embed every Nth compared frame (default: at most 60 frames; "
                                                "0: skip identity metrics)."),
    fps: str | None = typer.Option(None, "--fps", help="Frame rate of image-sequence inputs (24000/1001 or "
                                                       "23.976, 24, 25, ...)."),
    self_swap_: bool = typer.Option(False, "--self-swap", metavar="",
                                    help="Also re-render the model's held-out source frames (train with "
                                         "--holdout) and compare them with the truth: SSIM, PSNR, GMSD, sharpness."),
    model: str | None = typer.Option(None, "--model", help="The model for --self-swap (default with --render: "
                                                           "the render's)."),
    json_out: bool = JsonOpt,
) -> None:
    """Measure a merged clip against its original: identity, expression, detail, steadiness and seams.

    Also pose and gaze; with --self-swap, the model's fidelity on source frames it never trained on.

    Writes the JSON report and a before/after contact sheet next to the merged clip (or where
    --out/--sheet say) and prints a table (or the report with --json).

    --self-swap also writes MERGED.self-swap.mp4 and its sheet (truth over re-render, about 100 %).
    """
    with Workspace.open(workspace) as ws:
        request = build_request(ws, render=render, original=original, merged=merged, src=src, dst=dst,
                                embed_every=embed_every, sheet=sheet, fps=fps)
        json_path = out or default_report(request.merged, ".eval.json")
        name = model or request.model
        if self_swap_:
            if name is None:
                raise ConfigError("--self-swap needs a model: give --render (its model) or --model NAME")
            held_out_faces(ws, find_model(ws, name))  # refuse before the long part
        elif model is not None:
            raise ConfigError("--model is for --self-swap")
        with progress_bar("evaluating", "frames", enabled=not json_out) as progress:
            report = evaluate(ws, request, progress=progress)
        if self_swap_:
            assert name is not None
            with progress_bar("self-swap", "frames", enabled=not json_out) as progress:
                report.self_swap = self_swap(ws, name, default_report(request.merged, ".self-swap.mp4"),
                                             sheet=default_report(request.merged, ".self-swap.png"),
                                             progress=progress)
    report.write(json_path)
    if json_out:
        emit_json({**report.to_dict(), "report": str(json_path)})
        return
    print_table(report)
    extra = f"; self-swap sheet {report.self_swap.sheet}" if report.self_swap is not None else ""
    console.print(f"report {json_path}; contact sheet {report.sheet}{extra}")
