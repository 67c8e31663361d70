"""`doppel merge`: put a trained face into every frame of a video, with its audio."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from doppel.cli.common import JsonOpt, console, emit_json, progress_bar, sigterm_interrupts
from doppel.io.formats import CODECS
from doppel.merge.settings import CHOICES, MergeSettings, load_settings, parse_override
from doppel.store import Workspace
from doppel.workflow.merge import MergeRequest
from doppel.workflow.merge import merge as run_merge


def _bound(meta: list[object], name: str) -> object:
    return next((getattr(m, name) for m in meta if getattr(m, name, None) is not None), "")


def _set_help() -> str:
    """The --set help, from the settings' own declared types and ranges."""
    fields = MergeSettings.model_fields
    numbers = [f"{k} ({_bound(f.metadata, 'ge')}..{_bound(f.metadata, 'le')})"
               for k, f in fields.items() if f.annotation in (int, float)]
    flags = [k for k, f in fields.items() if f.annotation is bool]
    return ("Change one setting, KEY=VALUE (repeatable). Choices: "
            + ", ".join(f"{k} ({'|'.join(map(str, v))})" for k, v in CHOICES.items())
            + "; numbers: " + ", ".join(numbers) + "; true/false: " + ", ".join(flags)
            + "; mask_polygons: JSON.")


_SET_HELP = _set_help()
_CODEC_HELP = "; ".join(f"{name}: {spec.about}" for name, spec in CODECS.items()) + "."
CodecChoice = Enum("CodecChoice", {n: n for n in CODECS}, type=str)  # type: ignore[misc]


def merge(
    workspace: Path = typer.Argument(..., help="The workspace holding the model and the destination faces."),
    input: Path = typer.Argument(..., help="Destination video (extracted on the fly if the workspace lacks it)."),
    model: list[str] = typer.Option(..., "--model", "-m", help="Name of a model trained in this workspace. Repeat "
                                    "it for a shot with several people: each model swaps its own destination "
                                    "person, all in one pass (one decode, one encode; review scores each)."),
    output: Path = typer.Option(..., "--output", "-o", help="Video to write (shot.mov, shot.mkv, ...) or an image "
                                                            "sequence (out/shot.%06d.exr, out/shot.####.dpx)."),
    codec: CodecChoice | None = typer.Option(None, "--codec", help="Video codec (default: from the file name: "
                                                                   ".mp4/.mov h264, .mkv ffv1). " + _CODEC_HELP),
    fps: str | None = typer.Option(None, "--fps", help="Frame rate of an image-sequence INPUT: 24000/1001 "
                                                       "(or 23.976), 24, 25, 29.97, 30, 48, 50, 59.94, 60 or any "
                                                       "rational."),
    start_number: int | None = typer.Option(None, "--start-number", min=0, help="First frame number of an "
                                            "image-sequence output (default: the input sequence's, else 0)."),
    settings_file: Path | None = typer.Option(None, "--settings", help="JSON file of merge settings."),
    set_: list[str] = typer.Option([], "--set", help=_SET_HELP),
    override: list[str] = typer.Option([], "--override",
                                       help="Settings for some frames: FIRST[-LAST]:KEY=VALUE[,KEY=VALUE] "
                                            "(repeatable; e.g. 120-180:keep_original=true)."),
    identity: str | None = typer.Option(None, "--identity", help="Destination person (default: the model's; "
                                        "one --model only)."),
    layers: Path | None = typer.Option(None, "--layers", help="Also write compositing layers: a folder (per frame a "
                                         "16-bit RGBA face, its matte and transform; a sub-folder per model when "
                                         "there are several) or NAME.mov (ProRes 4444: the merged frames with the "
                                         "faces' matte as alpha)."),
    crf: int = typer.Option(18, "--crf", min=0, max=51, help="H.264 quality (lower = better, bigger)."),
    preset: str = typer.Option("veryfast", "--preset", help="x264 speed preset."),
    batch: int = typer.Option(8, "--batch", min=1, max=256, help="Faces per inference batch."),
    json_out: bool = JsonOpt,
) -> None:
    """Merge MODEL into every frame of INPUT where the destination person is, writing OUTPUT.

    With several --model, each swaps its own destination person, all in one pass.

    Frames without the person pass through; output keeps the input's frame count, timing,
    resolution and audio, and carries doppel's watermark and content credentials. Rerunning with
    the same settings resumes and reuses finished frames.
    """
    settings = load_settings(settings_file, set_)
    overrides = tuple(parse_override(text) for text in override)
    request = MergeRequest(input=input, output=output, model=model[0], others=tuple(model[1:]), settings=settings,
                           overrides=overrides,
                           identity=identity, layers=layers, crf=crf, preset=preset, batch=batch,
                           codec=codec.value if codec is not None else None, fps=fps, start_number=start_number)
    with Workspace.open(workspace) as ws, progress_bar("merging", enabled=not json_out) as progress, \
            sigterm_interrupts():
        report = run_merge(ws, request, progress=progress)
    data = report.to_dict()
    if json_out:
        emit_json(data)
        return
    flicker = f", flicker ratio {report.flicker_ratio:.2f}" if report.flicker_ratio is not None else ""
    console.print(f"wrote {report.output}: {report.frames} frames ({report.swapped} swapped, "
                  f"{report.passthrough} without the person, {report.kept} kept) at {report.fps:.1f} frames/s"
                  f"{flicker}; render {report.render_uid}" + (" (resumed)" if report.resumed else ""))
    if report.occluded_frames:
        console.print(f"{len(report.occluded_frames)} frames flagged as occluded (see the review app)")
