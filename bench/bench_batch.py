"""Batch benchmark: a batch of shots in one process against the same batch on Ray, Ray's per-task costs, and
what a 100-shot job would take on 1, 10 and 100 GPU nodes.

Shots: shared clips (``../shared/media``) merged with a ``cpu``-preset network of **untrained weights**
through the product's model loading (speed does not depend on training). Each path runs the whole batch
from an empty inference cache, alternately (in-process, Ray, in-process, Ray) so that the other work on
this shared machine weighs on both alike; medians are compared. The Ray path is a private Ray instance on
this machine (``--ray local``: one worker per core, loopback only), started before timing, as a farm's
cluster is up before a job; its start is reported apart. Per-task overheads come from the batch's own
accounts: scheduling (dispatch to a worker's start, plus its end to the driver's receipt), model load
(once per worker), chunk join (stream copy) and credentials per shot, and an actor round trip.

Per-frame costs for the estimate: CPU ms per frame (all threads) of the whole merge without inference
(a stand-in swapper), measured in this process at 720p and on a 4K copy of the clip; inference per face
from ``bench/results`` (``merge``) for the CPU, and an assumed figure for a GPU (none here). The model
behind the table is in :func:`estimate`; bench/README.md states its assumptions.

Run: ``python bench/run.py batch`` or ``python bench/bench_batch.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
MEDIA = BENCH.parents[1] / "shared" / "media"
CLIPS = ["lp_d18_man_neutral_studio.mp4", "lp_d19_man_glasses_studio.mp4", "lp_s18_woman_redhair_720p.mp4"]
QUICK_CLIPS = ["lp_d0_asian_man_greenscreen.mp4", "lp_d18_man_neutral_studio.mp4"]
CLIP_720P = "lp_s18_woman_redhair_720p.mp4"
WORKDIR = Path(tempfile.gettempdir()) / "doppel-bench-batch"
TARGET_RATIO = 0.9
FRAMES_4K = 40


# -- set-up (not timed) ---------------------------------------------------------------------------------
def _workspace(clips: list[str]) -> Path:
    from bench_merge import _ident, _register_model
    from doppel.extract.config import content_hash
    from doppel.provenance.consent import add_consent
    from doppel.store import Workspace
    from doppel.workflow.extract import extract
    from doppel.workflow.models import find_model, load_model
    from doppel.workflow.workspace import create_workspace

    root = WORKDIR / "ws"
    if not root.exists():
        with create_workspace(root) as ws:
            add_consent(ws, "src", "doppel benchmark", "benchmark only", "public-domain-demo")
    with Workspace.open(root) as ws:
        for name in clips:
            clip = ws.clips.by_hash(content_hash(MEDIA / name))
            if clip is None or not ws.faces.extracted(clip.id, _ident(name)):
                extract(ws, _ident(name), MEDIA / name)
        if ws.models.get("bench-cpu") is None:
            _register_model(ws, "bench-cpu", "cpu", _ident(CLIP_720P))
        load_model(find_model(ws, "bench-cpu"))  # exports ONNX and times the runtimes once (cached in the folder)
    return root


def _jobfile(clips: list[str], chunk_frames: int = 0) -> Path:
    from bench_merge import _ident

    out = WORKDIR / "out"
    out.mkdir(parents=True, exist_ok=True)
    text = f'[batch]\nchunk_frames = {chunk_frames}\n\n[defaults]\nmodel = "bench-cpu"\n'
    for clip in clips:
        stem = clip.split("_")[1]
        text += (f'\n[[shot]]\nname = "{stem}"\ninput = "{MEDIA / clip}"\noutput = "{out / stem}.mp4"\n'
                 f'identity = "{_ident(clip)}"\n')
    path = WORKDIR / f"jobs-{chunk_frames}-{len(clips)}.toml"
    path.write_text(text)
    return path


def _fresh(ws: Any, job: Any) -> None:
    """No output, no cached inference, no chunks: every run does all the work."""
    shutil.rmtree(ws.renders_dir() / "cache", ignore_errors=True)
    for shot in job.shots:
        shot.output.unlink(missing_ok=True)
        shot.output.with_suffix(".c2pa").unlink(missing_ok=True)
    for chunks in ws.renders_dir().glob("*/chunks"):
        shutil.rmtree(chunks, ignore_errors=True)


# -- the two paths ----------------------------------------------------------------------------------------
def _batch(root: Path, jobs: Path, executor: Any) -> dict[str, Any]:
    from doppel.batch.driver import run_batch
    from doppel.batch.jobfile import load_jobfile
    from doppel.store import Workspace

    job = load_jobfile(jobs)
    with Workspace.open(root) as ws:
        _fresh(ws, job)
        t0 = time.perf_counter()
        status = run_batch(ws, job, executor)
        seconds = time.perf_counter() - t0
    if not status.ok:
        raise RuntimeError(f"batch failed: {[s.error for s in status.shots if s.error]}")
    frames = status.frames
    chunks = sum(s.chunks for s in status.shots)
    return {"seconds": round(seconds, 2), "frames": frames, "fps": round(frames / seconds, 2), "chunks": chunks,
            "shots": len(status.shots), "overheads_s": {k: round(v, 3) for k, v in status.overheads.items()},
            "loadavg": round(os.getloadavg()[0], 2)}


def _local(root: Path, jobs: Path) -> dict[str, Any]:
    from doppel.batch.local import LocalExecutor

    return _batch(root, jobs, LocalExecutor())


def _ray(root: Path, jobs: Path, ex: Any) -> dict[str, Any]:
    return _batch(root, jobs, ex)


def _merge_alone(root: Path, jobs: Path) -> dict[str, Any]:
    """``doppel merge`` on each shot in turn (the product's single-process path), for reference."""
    from doppel.batch.jobfile import load_jobfile
    from doppel.store import Workspace
    from doppel.workflow.merge import MergeRequest, merge

    job = load_jobfile(jobs)
    with Workspace.open(root) as ws:
        _fresh(ws, job)
        t0 = time.perf_counter()
        frames = 0
        for s in job.shots:
            frames += merge(ws, MergeRequest(input=s.input, output=s.output, model=s.model, identity=s.identity)).frames
        seconds = time.perf_counter() - t0
    return {"seconds": round(seconds, 2), "frames": frames, "fps": round(frames / seconds, 2),
            "loadavg": round(os.getloadavg()[0], 2)}


def _ray_costs(ex: Any) -> dict[str, float]:
    """Round trip of an empty actor call (median of 20), ms."""
    times = []
    for _ in range(20):
        t0 = time.perf_counter()
        ex.ray.get(ex.actors[0].name.remote())
        times.append(time.perf_counter() - t0)
    return {"actor_roundtrip_ms": round(float(np.median(times)) * 1000, 2)}


# -- per-frame costs for the estimate ----------------------------------------------------------------------
def _clip_4k() -> Path:
    """The 720p clip's first frames scaled up to 3840x2160 (a 4K plate for timing, not for looks)."""
    import cv2

    from doppel.io.video import read_frames
    from doppel.io.writer import VideoWriter

    path = WORKDIR / "s18_4k.mp4"
    if not path.exists():
        with VideoWriter(path, width=3840, height=2160, fps=25, crf=18, preset="veryfast") as w:
            for f in read_frames(MEDIA / CLIP_720P, stop=FRAMES_4K):
                w.write(cv2.resize(f.image, (3840, 2160), interpolation=cv2.INTER_CUBIC))
    return path


def _cpu_per_frame(root: Path, clip: Path, identity: str) -> dict[str, float]:
    """CPU ms per frame (all threads) of a whole merge with a stand-in swapper (no inference): decode, align,
    mask, colour, blend, watermark, flicker measure, encode and credentials."""
    from bench_merge import StandIn
    from doppel.extract.config import content_hash
    from doppel.store import Workspace
    from doppel.workflow.extract import extract
    from doppel.workflow.merge import MergeRequest, merge

    with Workspace.open(root) as ws:
        known = ws.clips.by_hash(content_hash(clip))
        if known is None or not ws.faces.extracted(known.id, identity):
            extract(ws, identity, clip)
        out = WORKDIR / f"standin-{clip.stem}.mp4"
        shutil.rmtree(ws.renders_dir() / "cache", ignore_errors=True)
        c0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        report = merge(ws, MergeRequest(input=clip, output=out, model="bench-cpu", identity=identity),
                       swapper=StandIn("recolour", 128))
        c1, seconds = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - t0
    cpu = (c1.ru_utime + c1.ru_stime) - (c0.ru_utime + c0.ru_stime)
    out.unlink(missing_ok=True)
    out.with_suffix(".c2pa").unlink(missing_ok=True)
    return {"frames": report.frames, "cpu_ms_per_frame": round(cpu / report.frames * 1000, 1),
            "wall_ms_per_frame": round(seconds / report.frames * 1000, 1)}


def _output_bytes_per_frame(jobs: Path) -> float:
    from doppel.batch.jobfile import load_jobfile
    from doppel.io.video import probe

    job = load_jobfile(jobs)
    shot = next(s for s in job.shots if s.input.name == CLIP_720P)
    return shot.output.stat().st_size / probe(shot.output).frame_count if shot.output.exists() else 0.0


# -- the estimate ----------------------------------------------------------------------------------------------
SHOTS, FRAMES_PER_SHOT = 100, 240  # a 100-shot job of 10 s shots at 24 frames/s
NODE_CORES, WORKER_CORES = 16, 2  # a GPU node: 16 cores (as the H200 boxes here), one worker per 2 cores
GPU_MS_PER_FACE = 5.0  # assumed: a gpu-256 network on one datacenter GPU, batch 8, with transfers (not measured here)
CLUSTER_UP_S = 60.0  # assumed: `ray start` on every node, workers registered
STORAGE_MB_S = 1000.0  # assumed: a shared file system at about 10 Gbit/s for plates, chunks and outputs


def estimate(costs: dict[str, Any]) -> list[dict[str, Any]]:
    """Hours for SHOTS shots of FRAMES_PER_SHOT frames on 1, 10, 100 GPU nodes, at 720p and 4K, and what binds.

    Per frame a worker spends ``cpu_ms`` of CPU (measured, whole merge without inference) over its
    ``WORKER_CORES`` cores; the node's GPU serves all its workers' faces at ``GPU_MS_PER_FACE``. Shots are cut
    by the product's own planner (:func:`doppel.batch.plan.chunk_size`), run-ups included; each task pays the
    measured scheduling cost, each worker one model load; the driver joins and signs each shot (measured) one
    after another; data moved per frame (plate in, chunk out and back, output out) must fit the storage.
    """
    from doppel.batch.plan import chunk_size, plan_shot
    from doppel.merge.settings import FrameSettings, MergeSettings

    rows = []
    for res, scale in (("720p", 1.0), ("4K", 9.0)):
        cpu_ms = costs[f"cpu_ms_per_frame_{res}"]
        bytes_frame = costs["output_bytes_per_frame_720p"] * scale
        per_worker = NODE_CORES // WORKER_CORES
        worker_fps = WORKER_CORES * 1000.0 / cpu_ms
        gpu_share = 1000.0 / GPU_MS_PER_FACE / per_worker
        fps = min(worker_fps, gpu_share)
        for nodes in (1, 10, 100):
            workers = nodes * per_worker
            size = chunk_size([FRAMES_PER_SHOT] * SHOTS, workers)
            chunks = plan_shot(FRAMES_PER_SHOT, range(FRAMES_PER_SHOT), FrameSettings(MergeSettings()), size)
            tasks = SHOTS * len(chunks)
            task_s = max(c.frames + c.warmup for c in chunks) / fps + costs["scheduling_s_per_task"]
            waves = math.ceil(tasks / workers)
            compute_s = waves * task_s + costs["model_load_s"]
            driver_s = SHOTS * (costs["join_ms_per_frame"] * FRAMES_PER_SHOT / 1000 + costs["credentials_s_per_shot"]
                                * scale ** 0.5)
            frames_s = min(workers, tasks) * fps
            storage_s = SHOTS * FRAMES_PER_SHOT * (4 * bytes_frame) / (STORAGE_MB_S * 1e6)
            total = CLUSTER_UP_S + max(compute_s, driver_s, storage_s)
            binds = ("GPU inference" if gpu_share < worker_fps else "CPU: compositing, watermark, encode")
            if tasks < workers:
                binds = f"too few tasks ({tasks} for {workers} workers): shots too short to cut"
            if driver_s > compute_s:
                binds = "the driver joining and signing shots one by one"
            if storage_s > max(compute_s, driver_s):
                binds = "shared storage bandwidth"
            rows.append({"resolution": res, "nodes": nodes, "workers": workers, "tasks": tasks,
                         "chunk_frames": size, "hours": round(total / 3600, 2), "frames_per_s": round(frames_s, 1),
                         "compute_s": round(compute_s), "driver_s": round(driver_s), "storage_s": round(storage_s),
                         "binds_first": binds})
    return rows


# -- the benchmark ------------------------------------------------------------------------------------------------
def run(quick: bool) -> dict[str, Any]:
    if not (MEDIA / CLIP_720P).exists():
        return {"skipped": f"{MEDIA} absent", "passed": False, "target": "needs shared media"}
    from doppel.batch.ray_runner import RayExecutor

    WORKDIR.mkdir(parents=True, exist_ok=True)
    clips = QUICK_CLIPS if quick else CLIPS
    root = _workspace(clips)
    jobs = _jobfile(clips)
    chunked = _jobfile([CLIP_720P], chunk_frames=100)
    reps = 1 if quick else 2
    t0 = time.perf_counter()
    ex = RayExecutor("local", object_store_bytes=200 * 1024 * 1024)
    workers = ex.names()  # returns once every worker process is up
    ray_up = time.perf_counter() - t0
    result: dict[str, Any] = {"shots": clips, "weights": "untrained (random init), cpu preset: speed only",
                              "ray_workers": len(workers), "ray_start_s": round(ray_up, 2)}
    local_runs, ray_runs = [], []
    try:
        result.update(_ray_costs(ex))
        for _ in range(reps):
            local_runs.append(_local(root, jobs))
            ray_runs.append(_ray(root, jobs, ex))
        chunked_ray = _ray(root, chunked, ex)
        result["output_bytes_per_frame_720p"] = round(_output_bytes_per_frame(chunked))
    finally:
        ex.close()
    chunked_local = _local(root, _jobfile([CLIP_720P]))
    alone = _merge_alone(root, jobs)
    local_fps = float(np.median([r["fps"] for r in local_runs]))
    ray_fps = float(np.median([r["fps"] for r in ray_runs]))
    ratio = ray_fps / local_fps
    ray_tasks = sum(r["chunks"] for r in ray_runs)
    over = {k: sum(r["overheads_s"].get(k, 0.0) for r in ray_runs) for k in ray_runs[0]["overheads_s"]}
    shots = sum(r["shots"] for r in ray_runs)
    frames = sum(r["frames"] for r in ray_runs)
    costs: dict[str, Any] = {
        "scheduling_s_per_task": round(over.get("scheduling", 0.0) / ray_tasks, 3),
        "model_load_s": round(over.get("model_load", 0.0) / (len(workers) * len(ray_runs)), 2),
        "join_ms_per_frame": round(over.get("join", 0.0) / frames * 1000, 3),
        "join_s_per_shot": round(over.get("join", 0.0) / shots, 3),
        "credentials_s_per_shot": round(over.get("credentials", 0.0) / shots, 3),
        "prepare_s_per_shot": round(over.get("prepare", 0.0) / shots, 3),
        "output_bytes_per_frame_720p": result["output_bytes_per_frame_720p"],
    }
    per_frame_720 = _cpu_per_frame(root, MEDIA / CLIP_720P, "dst-s18")
    per_frame_4k = per_frame_720 if quick else _cpu_per_frame(root, _clip_4k(), "dst-s18-4k")
    costs["cpu_ms_per_frame_720p"] = per_frame_720["cpu_ms_per_frame"]
    costs["cpu_ms_per_frame_4K"] = per_frame_4k["cpu_ms_per_frame"] * (9 if quick else 1)
    result.update(local=local_runs, ray=ray_runs, merge_alone=alone, chunked={"ray": chunked_ray,
                                                                              "local": chunked_local},
                  per_frame={"720p": per_frame_720, "4K": per_frame_4k}, costs=costs, estimate=estimate(costs),
                  ratio=round(ratio, 3))
    result.update(
        target=f"Ray path >= {TARGET_RATIO}x the single-process batch's frames/s on this machine",
        passed=bool(ratio >= TARGET_RATIO),
        headline=(f"Ray {ray_fps:.1f} vs in-process {local_fps:.1f} frames/s ({ratio:.2f}x; doppel merge per shot "
                  f"{alone['fps']:.1f}); per task: scheduling {costs['scheduling_s_per_task'] * 1000:.0f} ms, "
                  f"model load {costs['model_load_s']:.1f} s per worker, join {costs['join_s_per_shot'] * 1000:.0f} "
                  f"ms per shot; Ray up in {ray_up:.1f} s"),
        table=_table(result))
    return result


def _table(r: dict[str, Any]) -> str:
    lines = ["| path | frames | seconds | frames/s | chunks | load |", "|---|---|---|---|---|---|"]
    for name in ("local", "ray"):
        lines += [f"| {name} | {x['frames']} | {x['seconds']} | {x['fps']} | {x['chunks']} | {x['loadavg']} |"
                  for x in r[name]]
    a = r["merge_alone"]
    lines.append(f"| doppel merge per shot | {a['frames']} | {a['seconds']} | {a['fps']} | - | {a['loadavg']} |")
    for name, x in r["chunked"].items():
        lines.append(f"| one 720p shot, {name} | {x['frames']} | {x['seconds']} | {x['fps']} | {x['chunks']} | "
                     f"{x['loadavg']} |")
    lines += ["", "| cost | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in r["costs"].items()]
    lines += [f"| actor round trip ms | {r['actor_roundtrip_ms']} |", f"| Ray start s | {r['ray_start_s']} |"]
    lines += ["", "| resolution | GPU nodes | workers | tasks | hours | frames/s | binds first |",
              "|---|---|---|---|---|---|---|"]
    lines += [f"| {e['resolution']} | {e['nodes']} | {e['workers']} | {e['tasks']} | {e['hours']} | "
              f"{e['frames_per_s']} | {e['binds_first']} |" for e in r["estimate"]]
    return "\n".join(lines)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    out = run(args.quick)
    print(json.dumps(out, indent=1, default=str))
    print(out.get("table", ""))
