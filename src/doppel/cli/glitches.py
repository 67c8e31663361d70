"""`doppel glitches`: rank the frames of a render by how likely they give the fake away."""

from __future__ import annotations

from pathlib import Path

import typer

from doppel.cli.common import JsonOpt, console, emit_json, progress_bar
from doppel.review.analyse import analyse, is_stale
from doppel.review.cache import ReviewCache
from doppel.review.glitches import load_scores, ranked
from doppel.store import Workspace
from doppel.workflow.renders import find_render


def glitches(
    workspace: Path = typer.Argument(..., help="The workspace holding the render."),
    render: str = typer.Argument(..., help="Render: its uid, its number, or a unique prefix of its uid."),
    top: int = typer.Option(20, "--top", "-k", min=1, help="How many frames to list."),
    again: bool = typer.Option(False, "--again", metavar="", help="Measure again even if the render was analysed."),
    json_out: bool = JsonOpt,
) -> None:
    """Score every frame of RENDER and print the frames most likely to be glitches.

    Scoring runs once and is cached; it runs again when the render was merged again since (or --again).

    Reasons: landmark confidence drop or jump, identity drifting from the source, mask instability,
    colour jump, mouth/eye/gaze disagreement with the plate, occlusion, the face segmenter's doubt, an
    occluder painted over (leak), face dropout. Scores are robust
    z-scores against the render itself; frames scoring 4 or more are flagged. In a render that swaps
    several people (merge --model A --model B) every person's face is measured and scored on its own,
    and each reason names the model whose face it is.
    """
    with Workspace.open(workspace) as ws:
        r = find_render(ws, render)
        measured = None
        if again or not ReviewCache(ws, r.uid).ready() or is_stale(ws, r.id):
            with progress_bar("measuring", enabled=not json_out) as progress:
                measured = analyse(ws, r.id, progress=progress)
        scores = load_scores(ws, r.id)
    best = ranked(scores, top)
    flagged = sum(g.flagged for g in scores)
    if json_out:
        emit_json({"render": r.uid, "frames": len(scores), "flagged": flagged,
                   "analysis": measured.to_dict() if measured else None, "glitches": [g.to_dict() for g in best]})
        return
    console.print(f"render {r.uid}: {len(scores)} frames, {flagged} flagged")
    for g in best:
        why = ", ".join(f"{x['person'] + ' ' if 'person' in x else ''}{x['reason']} z={x['z']:.1f}"
                        for x in g.reasons) or "-"
        mark = "FLAG" if g.flagged else "    "
        typer.echo(f"{g.frame:7d}  {g.score:7.2f}  {mark}  {g.status:11s}  {why}")
