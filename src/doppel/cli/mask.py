"""`doppel mask`: the face segmenter that keeps hands, objects and glasses on top of the swap."""

from __future__ import annotations

from pathlib import Path

import typer

from doppel.cli.common import JsonOpt, console, emit_json, progress_bar
from doppel.io.image import write_image
from doppel.store import Workspace
from doppel.workflow.segment import MaskTrainRequest, describe, fine_tune_config, preview, train_mask

app = typer.Typer(help="The face segmenter merge uses to keep occluders (hands, objects, glasses) on top.",
                  no_args_is_help=True)


def train(
    workspace: Path = typer.Argument(..., help="The workspace."),
    minutes: float = typer.Option(3.0, "--minutes", min=0.05, help="Training budget in minutes of wall clock."),
    steps: int | None = typer.Option(None, "--steps", min=1, help="Stop after this many steps instead."),
    identity: list[str] = typer.Option([], "--identity", "-i",
                                       help="Train on these identities' faces (repeatable; default: all)."),
    every: int = typer.Option(1, "--every", min=1, help="Use every Nth face of each identity."),
    threads: int = typer.Option(1, "--threads", min=1, max=64, help="CPU threads for training."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    json_out: bool = JsonOpt,
) -> None:
    """Fine-tune the face segmenter on this workspace's faces and the polygons drawn in review.

    Starts from the base segmenter every time; trains on the faces with synthetic occluders drawn on
    them and on each frame where an artist drew polygons (include: face; exclude: in front of the face).
    Merge and review then use it for this workspace (WS/models/_segmenter/).
    """
    cfg = fine_tune_config(minutes=None if steps else minutes, steps=steps, threads=threads, seed=seed)
    request = MaskTrainRequest(identities=tuple(identity), config=cfg, every=every)
    unit = "steps" if steps else "s"
    with Workspace.open(workspace) as ws, progress_bar("training segmenter", unit, enabled=not json_out) as progress:
        report = train_mask(ws, request, progress=progress)
    if json_out:
        emit_json(report.to_dict())
        return
    t = report.train
    console.print(f"segmenter fine-tuned on {report.faces} faces of {', '.join(report.identities)} and "
                  f"{len(report.labelled_frames)} frames with polygons: {t['steps']} steps in {t['seconds']:.0f} s "
                  f"(loss {t['final_loss']:.3f}); saved {report.folder}")


def preview_(
    workspace: Path = typer.Argument(..., help="The workspace."),
    identity: str = typer.Option(..., "--identity", "-i", help="Whose faces to show."),
    output: Path = typer.Option(..., "--output", "-o", help="Contact sheet to write (.png or .jpg)."),
    count: int = typer.Option(24, "--count", min=1, max=400, help="How many faces."),
    json_out: bool = JsonOpt,
) -> None:
    """Write a contact sheet of faces with the masks merge would use.

    Green: the visible face (what the swap may cover); magenta: glasses; darkened: kept off the swap.
    """
    with Workspace.open(workspace) as ws:
        image = preview(ws, identity, count)
        info = describe(ws)
    write_image(output, image)
    if json_out:
        emit_json({"output": str(output), "faces": count, "segmenter": info.to_dict()})
        return
    console.print(f"wrote {output} ({info.source} segmenter)")


def info(
    workspace: Path = typer.Argument(..., help="The workspace."),
    json_out: bool = JsonOpt,
) -> None:
    """Say which segmenter merge uses in this workspace and how it was trained."""
    with Workspace.open(workspace) as ws:
        found = describe(ws)
    if json_out:
        emit_json(found.to_dict())
        return
    console.print(f"{found.source} segmenter ({found.size} px {found.face_type}, {found.runtime}): {found.folder}")
