"""`doppel verify FILE`: is this a doppel output? Reads the watermark and the content credentials."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from doppel.cli.common import JsonOpt, console, emit_json, progress_bar
from doppel.provenance.verify import MAX_FRAMES, payload_text, verify_file


def verify(
    file: Path = typer.Argument(..., help="A video or image to check."),
    workspace: Path | None = typer.Option(None, "--workspace", "-w", help="Look the render up in this workspace, "
                                                                           "trust its signing CA, and test its "
                                                                           "renders' marks (reads marks too weak "
                                                                           "to decode blind)."),
    frames: int = typer.Option(MAX_FRAMES, "--frames", min=1, help="Frames to read for the watermark, spread "
                                                                    "over the clip."),
    json_out: bool = JsonOpt,
) -> None:
    """Check a video or image for doppel's watermark and content credentials.

    Reports the watermark (detected, payload, confidence, frames checked; a mark found too damaged to read
    its payload is reported found with "payload unreadable": made by doppel, render unknown) and the
    credentials (present, intact, trusted, source type, render id), and what could not be checked.

    Exit status, for scripts: 0 = doppel's watermark found and/or content credentials intact; 1 = read,
    but neither found, or the credentials were tampered with; 2 = the file could not be read.
    """
    with progress_bar("reading frames", enabled=not json_out) as progress:
        report = verify_file(file, workspace=workspace, max_frames=frames, progress=progress)
    if json_out:
        emit_json(report.to_dict())
    else:
        wm, cred = report.watermark, report.credentials
        console.print(f"[bold]{escape(str(file))}[/bold]" + (escape(f": {report.error}") if report.error else ""))
        if wm.get("checked"):
            how = f" (matched among the workspace's {wm['candidates']} renders)" if wm.get("method") == "candidates" \
                else ""
            console.print(f"  watermark:   {'FOUND' + how if wm['detected'] else 'not found'}"
                          + (f", {payload_text(wm)}, false-positive bound {wm['false_positive_bound']:.1e}"
                             if wm["detected"] else "") + f" ({wm['frames_checked']} frames checked)")
        state = ("trusted" if cred.get("trusted") else "intact (signer not trusted here)" if cred.get("valid")
                 else "NOT intact") if cred.get("present") else "none"
        console.print(escape(f"  credentials: {state}" + (f", render {cred.get('render_id')}, source type "
                                                          f"{cred.get('source_type')}" if cred.get("present") else "")))
        for line in report.findings:
            console.print(escape(f"  - {line}"))
        for line in report.not_checked:
            console.print(escape(f"  - not checked: {line}"))
        console.print(f"  verdict: {report.verdict}")
    if report.exit_code:
        raise typer.Exit(report.exit_code)
