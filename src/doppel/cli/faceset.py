"""`doppel faceset ...`: look at and curate face sets (stats, prune, unprune)."""

from __future__ import annotations

from pathlib import Path

import typer

from doppel.cli.common import JsonOpt, console, emit_json, progress_bar
from doppel.faceset import curate
from doppel.faceset.plots import faceset_coverage_plot
from doppel.store import Workspace

app = typer.Typer(name="faceset", help="Look at and curate face sets.", no_args_is_help=True)


def stats(
    workspace: Path = typer.Argument(..., help="The workspace."),
    name: str = typer.Argument(..., help="Face set (identity) to describe: the source."),
    against: str | None = typer.Option(None, "--against", help="Destination face set whose poses this set "
                                                                "should cover."),
    plot: Path | None = typer.Option(None, "--plot", help="Write a yaw/pitch scatter and blur histogram PNG."),
    json_out: bool = JsonOpt,
) -> None:
    """Counts, sharpness and head-pose coverage; with --against, the destination poses not covered."""
    with Workspace.open(workspace) as ws:
        report = curate.stats(ws, name, against=against)
        if plot is not None:
            report["plot"] = str(faceset_coverage_plot(ws, name, plot, against=against))
    if json_out:
        emit_json(report)
        return
    console.print(f"{name}: {report['included']} faces in use ({report['excluded']} pruned) from "
                  f"{report['clips']} clip(s)")
    if report["included"]:
        b, y, p = report["blur"], report["yaw"], report["pitch"]
        console.print(f"  blur  median {b['median']:.0f} (p10 {b['p10']:.0f}, p90 {b['p90']:.0f})")
        console.print(f"  yaw   {y['min']:.0f}..{y['max']:.0f} deg, pitch {p['min']:.0f}..{p['max']:.0f} deg, "
                      f"{report['pose_cells']} pose cells of {report['pose_bin_degrees']:g} deg")
    if "against" in report:
        a = report["against"]
        console.print(f"  against {a['identity']}: {a['uncovered']} of {a['faces']} destination faces "
                      f"({100 * a['uncovered_fraction']:.1f}%) have no source face within "
                      f"{a['cover_radius_degrees']:g} deg of their pose")
        for cell in a["uncovered_cells"][:8]:
            console.print(f"    yaw {cell['yaw']:+d}..{cell['yaw'] + 10:+d}, pitch {cell['pitch']:+d}.."
                          f"{cell['pitch'] + 10:+d}: {cell['faces']} faces")
    if plot is not None:
        console.print(f"  plot: {plot}")


def prune(
    workspace: Path = typer.Argument(..., help="The workspace."),
    name: str = typer.Argument(..., help="Face set (identity) to prune."),
    blur_below: float | None = typer.Option(None, "--blur-below", help="Exclude faces whose blur score is "
                                                                       "below this (see `faceset stats`)."),
    duplicates: float | None = typer.Option(None, "--duplicates", help="Exclude near-duplicates: thumbnail "
                                                                       "distance below this (0-1, e.g. 0.02)."),
    outliers: float | None = typer.Option(None, "--outliers", help="Exclude faces farther than this identity "
                                                                   "distance from the set (e.g. 0.5)."),
    dry_run: bool = typer.Option(False, "--dry-run", metavar="", help="Report what would be excluded; change nothing."),
    json_out: bool = JsonOpt,
) -> None:
    """Exclude blurry faces, near-duplicates and other people's faces (reversible: `faceset unprune`)."""
    criteria = curate.PruneCriteria(blur_below=blur_below, duplicates=duplicates, outliers=outliers)
    with Workspace.open(workspace) as ws, progress_bar(f"prune {name}", "faces", enabled=not json_out) as bar:
        report = curate.prune(ws, name, criteria, dry_run=dry_run, progress=bar)
    if json_out:
        emit_json(report)
        return
    verb = "would exclude" if dry_run else "excluded"
    parts = ", ".join(f"{n} {r}" for r, n in report["by_reason"].items() if n)
    console.print(f"{name}: {verb} {report['pruned']} of {report['considered']} faces"
                  f"{' (' + parts + ')' if parts else ''}; {report['remaining']} remain")


def unprune(
    workspace: Path = typer.Argument(..., help="The workspace."),
    name: str = typer.Argument(..., help="Face set (identity)."),
    reason: str | None = typer.Option(None, "--reason", help="Only faces pruned for this reason "
                                                             "(blur, duplicate, outlier)."),
    json_out: bool = JsonOpt,
) -> None:
    """Include again the faces that `faceset prune` excluded."""
    with Workspace.open(workspace) as ws:
        report = curate.unprune(ws, name, reason=reason)
    if json_out:
        emit_json(report)
    else:
        console.print(f"{name}: {report['restored']} faces included again")
