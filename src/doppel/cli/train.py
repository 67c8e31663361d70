"""`doppel train`: train a per-pair face model (or a base model with --pretrain); rerun to resume."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from types import FrameType
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from doppel.cli.common import JsonOpt, clock, console, emit_json
from doppel.core.errors import ConfigError
from doppel.store import Workspace
from doppel.train import checkpoint
from doppel.train.loop import RunSpec, StepInfo, TrainResult
from doppel.workflow.train import DetailPlan, default_base, detail_plan, late_share, resolve_base, resolve_configs
from doppel.workflow.train import train as run_training


def _fmt_time(seconds: float | None) -> str:
    return "--" if seconds is None else clock(seconds)


def train(
    workspace: Path = typer.Argument(..., help="The workspace folder."),
    src: str | None = typer.Option(None, "--src", help="Source identity (the face to put in)."),
    dst: str | None = typer.Option(None, "--dst", help="Destination identity (the face to replace)."),
    model: str = typer.Option(..., "--model", help="Model name (a folder under WS/models); rerun to resume."),
    pretrain: bool = typer.Option(False, "--pretrain", metavar="",
                                  help="Train a base model on --faces instead of a pair."),
    faces: list[str] = typer.Option([], "--faces", help="Face sets for --pretrain (repeat the option)."),
    preset_name: str | None = typer.Option(None, "--preset", help="cpu, gpu-128 or gpu-256 (default cpu)."),
    arch: str | None = typer.Option(None, "--arch", help="Architecture: liae (default) or df."),
    resolution: int | None = typer.Option(None, "--resolution", help="Face size in pixels (64..512, /32)."),
    face_type: str | None = typer.Option(None, "--face-type", help="full, whole or head (as extracted)."),
    ae_dims: int | None = typer.Option(None, "--ae-dims", help="Bottleneck width."),
    e_dims: int | None = typer.Option(None, "--e-dims", help="Encoder base width."),
    d_dims: int | None = typer.Option(None, "--d-dims", help="Decoder base width."),
    d_mask_dims: int | None = typer.Option(None, "--d-mask-dims", help="Mask decoder base width."),
    batch: int | None = typer.Option(None, "--batch", help="Faces per identity per step."),
    accum: int | None = typer.Option(None, "--accum", help="Gradient accumulation steps."),
    lr: float | None = typer.Option(None, "--lr", help="Learning rate (default: the preset's; cpu 2e-4, gpu 5e-5)."),
    gan_power: float | None = typer.Option(None, "--gan-power", help="Patch-GAN weight (0 = off)."),
    iters: int | None = typer.Option(None, "--iters", help="Train until this step count."),
    minutes: float | None = typer.Option(None, "--minutes", help="Train for this many minutes."),
    base: str | None = typer.Option(None, "--base", help="Start from this base model (doppel:NAME for a shipped "
                                                         "one, a model name or a folder). Default: the shipped "
                                                         "base of the same architecture, if any."),
    no_base: bool = typer.Option(False, "--no-base", metavar="",
                                 help="Start a new model from random weights, not from the shipped base model."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    precision: str | None = typer.Option(None, "--precision", help="auto, fp32, bf16 or fp16."),
    workers: int | None = typer.Option(None, "--workers", help="Data loading processes (0 = in-process)."),
    compile_: bool | None = typer.Option(None, "--compile/--no-compile", metavar="", help="Use torch.compile."),
    seed: int | None = typer.Option(None, "--seed", help="Random seed."),
    checkpoint_minutes: float | None = typer.Option(None, "--checkpoint-minutes", help="Checkpoint interval."),
    preview_minutes: float | None = typer.Option(None, "--preview-minutes", help="Preview interval."),
    holdout: float = typer.Option(0.0, "--holdout", help="Fraction of faces kept out for previews/evaluation "
                                                         "(and `doppel eval --self-swap`)."),
    detail: bool | None = typer.Option(None, "--detail/--no-detail", metavar="",
                                       help="Then train the source's detail network (3x the model's resolution) "
                                            "on the last quarter of the budget. Default: the preset's (the cpu "
                                            "preset trains one)."),
    late: bool | None = typer.Option(None, "--late/--no-late", metavar="",
                                     help="Random warp off for the last quarter of the face model's budget "
                                          "(DeepFaceLab's late stage). Default: the preset's."),
    json_out: bool = JsonOpt,
) -> None:
    """Train a face model for a source/destination pair (or a base model); rerun to resume.

    Trains until --iters or --minutes (or Ctrl-C). Ctrl-C or SIGTERM saves a checkpoint; rerunning the
    same command resumes it exactly."""
    if base and no_base:
        raise ConfigError("--base and --no-base contradict each other; give one")
    if pretrain and detail:
        raise ConfigError("--detail follows a pair model; a base model (--pretrain) has none")
    if pretrain and late:
        raise ConfigError("--late is for a pair model; a base model (--pretrain) keeps random warp on")
    if pretrain:
        if not faces:
            raise ConfigError("--pretrain needs at least one --faces NAME")
        if src or dst:
            raise ConfigError("--pretrain trains on --faces; do not give --src/--dst")
        src_ids = dst_ids = tuple(faces)
    else:
        if not src or not dst:
            raise ConfigError("give --src and --dst identities (or --pretrain --faces NAME...)")
        if src == dst:
            raise ConfigError(f"--src and --dst are both {src!r}; they must differ")
        src_ids, dst_ids = (src,), (dst,)
    with Workspace.open(workspace) as ws:
        mflags = {"arch": arch, "resolution": resolution, "face_type": face_type, "ae_dims": ae_dims,
                  "e_dims": e_dims, "d_dims": d_dims, "d_mask_dims": d_mask_dims,
                  "_preset_given": preset_name is not None}
        tflags = {"batch": batch, "accum": accum, "lr": lr, "gan_power": gan_power, "precision": precision,
                  "workers": workers, "compile": compile_, "seed": seed, "checkpoint_minutes": checkpoint_minutes,
                  "preview_minutes": preview_minutes}
        base_dir = resolve_base(ws, base) if base else None
        mcfg, tcfg, pname = resolve_configs(ws, model, preset_name, mflags, tflags, base_dir)
        if base_dir is None and not no_base:
            base_dir = default_base(ws, model, mcfg, pretrain=pretrain)
        spec = RunSpec(name=model, model=mcfg, train=tcfg, src=src_ids, dst=dst_ids, pretrain=pretrain,
                       preset=pname, iters=iters, minutes=minutes, base=base_dir, device=device, holdout=holdout,
                       late=late_share(pname, pretrain=pretrain, wanted=late))
        secondary = int(os.environ.get("RANK", "0")) != 0  # under torchrun only rank 0 reports
        plan = None if secondary else detail_plan(pname, pretrain=pretrain, wanted=detail)
        result, signum = _run_with_signals(ws, spec, plan, quiet=json_out or secondary)
    report = _report(result)
    if secondary:
        pass
    elif json_out:
        emit_json(report)
    else:
        console.print(f"{result.status}: model {model} at step {result.step} "
                      f"({result.images_per_s:.2f} images/s over {result.steps_run} steps on {result.device}, "
                      f"{result.precision}); preview {result.preview}")
        if report["base"]:
            console.print(f"started from base model {report['base']}")
        for k in report["base_knows"]:
            console.print(f"[yellow]warning[/]: the base was pretrained on {k['person']}, who looks like "
                          f"{k['identity']}: if the swap keeps that identity, train with --no-base")
        if result.detail is not None:
            console.print(f"detail network: {result.detail.steps} steps in {result.detail.seconds:.0f} s")
    if signum is not None:
        raise typer.Exit(128 + signum)


def _started_from(model_dir: Path) -> str | None:
    """The base model the run's weights started from, as train.json records it."""
    try:
        base = json.loads((model_dir / checkpoint.TRAIN).read_text()).get("base")
    except (OSError, ValueError, AttributeError):
        return None
    return base if isinstance(base, str) else None


def _report(r: TrainResult) -> dict[str, Any]:
    return {"model_dir": str(r.model_dir), "base": _started_from(r.model_dir), "step": r.step, "status": r.status,
            "resumed_from": r.resumed_from, "late_from": r.late_from,
            "steps_run": r.steps_run, "seconds": round(r.seconds, 2), "images_per_s": round(r.images_per_s, 3),
            "losses": {k: round(v, 5) for k, v in r.losses.items()}, "device": r.device,
            "precision": r.precision, "preview": str(r.preview) if r.preview else None, "world": r.world,
            "base_knows": r.extra.get("base_knows", []),
            "detail": None if r.detail is None else {"steps": r.detail.steps, "seconds": round(r.detail.seconds, 2),
                                                     "losses": {k: round(v, 5) for k, v in r.detail.losses.items()}}}


def _run_with_signals(ws: Workspace, spec: RunSpec, plan: DetailPlan | None, *, quiet: bool
                      ) -> tuple[TrainResult, int | None]:
    """Run training; SIGINT/SIGTERM ask the loop to checkpoint and stop at the end of the step."""
    received: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        if received:  # a second Ctrl-C: stop now (the last checkpoint stays valid)
            raise KeyboardInterrupt
        received.append(signum)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        if quiet or not console.is_terminal:
            result = _run_plain(ws, spec, plan, received, quiet)
        else:
            result = _run_bar(ws, spec, plan, received)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    return result, (received[0] if received else None)


def _losses_text(info: StepInfo) -> str:
    keys = ("loss", "src", "dst", "mask", "gan")
    return " ".join(f"{k} {info.losses[k]:.3f}" for k in keys if k in info.losses)


def _run_plain(ws: Workspace, spec: RunSpec, plan: DetailPlan | None, received: list[int], quiet: bool
               ) -> TrainResult:
    last = [0.0]

    def on_step(info: StepInfo) -> None:
        if not quiet and time.monotonic() - last[0] > 60:
            last[0] = time.monotonic()
            console.print(f"step {info.step} {info.images_per_s:.2f} img/s {_losses_text(info)} "
                          f"ETA {_fmt_time(info.eta_s)}")

    return run_training(ws, spec, detail=plan, on_step=on_step, should_stop=lambda: bool(received))


def _run_bar(ws: Workspace, spec: RunSpec, plan: DetailPlan | None, received: list[int]) -> TrainResult:
    columns = (TextColumn(f"train {spec.name}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}"), TextColumn("ETA {task.fields[eta]}"), TimeElapsedColumn(),
               TextColumn("{task.fields[losses]}"))
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("train", total=spec.iters, rate="-- it/s", eta="--", losses="")

        def on_step(info: StepInfo) -> None:
            ips = info.images_per_s / (2 * spec.train.batch * spec.train.accum)
            bar.update(task, completed=info.step, rate=f"{ips:.2f} it/s {info.images_per_s:.1f} img/s",
                       eta=_fmt_time(info.eta_s), losses=_losses_text(info))

        return run_training(ws, spec, detail=plan, on_step=on_step, should_stop=lambda: bool(received))
