"""`doppel extract`: find, track, align and store one person's faces from clips."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from doppel.cli.common import JsonOpt, console, emit_json, progress_bar
from doppel.core.names import check_identity_name
from doppel.extract.backends import DETECTORS, LANDMARKERS
from doppel.extract.config import ExtractConfig
from doppel.ops.align import FACE_TYPES
from doppel.store import Workspace
from doppel.workflow.extract import check_inputs, person_reference
from doppel.workflow.extract import extract as extract_clip

FaceTypeChoice = Enum("FaceTypeChoice", {t: t for t in FACE_TYPES}, type=str)  # type: ignore[misc]
DetectorChoice = Enum("DetectorChoice", {n: n for n in DETECTORS.names()}, type=str)  # type: ignore[misc]
LandmarkerChoice = Enum("LandmarkerChoice", {n: n for n in LANDMARKERS.names()}, type=str)  # type: ignore[misc]


def extract(
    workspace: Path = typer.Argument(..., help="The workspace (made by `doppel init`)."),
    inputs: list[Path] = typer.Argument(..., metavar="INPUT...",
                                        help="Videos, still images, or image sequences (a folder, or a "
                                             "pattern: shot.%06d.exr, shot.####.dpx)."),
    identity: str = typer.Option(..., "--identity", "-i", help="Name of the face set to add the faces to."),
    person: Path | None = typer.Option(None, "--person", help="Photo of the person to keep (default: the person "
                                                               "with the longest track)."),
    every: int = typer.Option(1, "--every", min=1, help="Examine every Nth frame."),
    size: int = typer.Option(256, "--size", help="Side of the aligned face images, in pixels."),
    face_type: FaceTypeChoice = typer.Option("full", "--face-type",
                                             help="How much of the head the aligned image holds."),
    detector: DetectorChoice = typer.Option("dlib-hog", "--detector",
                                            help="Face detector (dlib-mmod: slower, finds more poses)."),
    landmarker: LandmarkerChoice = typer.Option("dlib-68", "--landmarker",
                                                help="Landmarker (mediapipe-mesh with the mediapipe extra)."),
    fps: str | None = typer.Option(None, "--fps", help="Frame rate of image-sequence inputs (24000/1001 or "
                                                       "23.976, 24, 25, ...)."),
    json_out: bool = JsonOpt,
) -> None:
    """Detect, track and align one person's faces in each INPUT and store them in the workspace.

    Re-running on the same clip replaces that clip's faces for the identity.
    """
    config = ExtractConfig(every=every, size=size, face_type=face_type.value, detector=detector.value,
                           landmarker=landmarker.value)
    check_identity_name(identity)
    with Workspace.open(workspace) as ws:
        check_inputs(inputs, fps)
        ref = person_reference(person, config)
        clips = []
        for path in inputs:
            with progress_bar(f"extract {path.name}", "frames", enabled=True) as progress:
                report = extract_clip(ws, identity, path, person=ref, progress=progress, config=config, fps=fps)
            clips.append(report.to_dict())
            if not json_out:
                console.print(f"{path}: face in {report.frames_with_face}/{report.frames} frames, "
                              f"{report.faces} faces, {report.fps:.1f} frames/s")
    seconds = sum(c["seconds"] for c in clips)
    frames = sum(c["frames"] for c in clips)
    summary = {"identity": identity, "workspace": str(workspace), "frames": frames,
               "frames_with_face": sum(c["frames_with_face"] for c in clips),
               "faces": sum(c["faces"] for c in clips), "seconds": round(seconds, 3),
               "fps": round(frames / seconds, 2) if seconds > 0 else 0.0, "clips": clips}
    if json_out:
        emit_json(summary)
    else:
        console.print(f"identity {identity!r}: {summary['faces']} faces from {len(clips)} clip(s), "
                      f"{summary['fps']} frames/s")
