"""Training throughput and peak memory per preset, and at DeepFaceLab SAEHD's default capacity.

Measured like the anchor (``../shared/anchors/dfl-saehd-cpu.md``): 64 aligned 256 px faces per
side (here the two public-domain fixture photos, jittered), batch 8 per side, masked training with
random warp and flips, the real training loop (data, augmentation, losses, optimiser, EMA); the
median seconds per iteration over iterations 6..40 (fewer with ``--quick``); images/s counts
source and destination faces (16 per iteration at batch 8). Each configuration runs in a fresh
child process so its peak RSS is its own. Also measured: bf16 vs fp32, loader worker processes on
two cores, and swap inference with PyTorch vs ONNX Runtime (the runtime ``load_swapper`` picks).

Run: ``nice -n 5 python bench/run.py train`` or ``python bench/bench_train.py [--quick]``.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ANCHOR = {"liae-128": {"images_per_s": 2.37, "peak_gib": 5.3}, "df-128": {"images_per_s": 3.00, "peak_gib": 3.9}}
TARGET_IPS = 4.7

# name -> (preset, overrides of the model config, train overrides)
CONFIGS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "saehd-liae-128 bf16": ("gpu-128", {}, {"precision": "bf16"}),
    "saehd-liae-128 fp32": ("gpu-128", {}, {"precision": "fp32"}),
    "saehd-liae-128 bf16 workers=2": ("gpu-128", {}, {"precision": "bf16", "workers": 2}),
    "saehd-df-128 bf16": ("gpu-128", {"arch": "df"}, {"precision": "bf16"}),
    "preset cpu": ("cpu", {}, {}),
    # preset gpu-128 is the first row (SAEHD capacity, batch 8, precision auto = bf16 on this CPU)
    "preset gpu-256": ("gpu-256", {}, {}),
}
QUICK = ("saehd-liae-128 bf16", "preset cpu")


def _workspace(root: Path, n: int) -> Path:
    sys.path.insert(0, str(ROOT / "tests"))
    import facefixtures

    ws = facefixtures.make_workspace(root / "ws", n=n, size=256)
    ws.close()
    return root / "ws"


def child(args: dict[str, Any]) -> dict[str, Any]:
    """Runs in a fresh process: train ``warmup + timed`` iterations and time each step."""
    from doppel.store import Workspace
    from doppel.train.config import model_config, preset, train_config
    from doppel.train.loop import RunSpec, StepInfo
    from doppel.train.models import build_model, param_counts
    from doppel.workflow.train import train

    p = preset(args["preset"])
    mcfg = model_config(p.model, **args["model"])
    tcfg = train_config(**{"batch": p.batch, "workers": 0, "checkpoint_minutes": 1e6, "preview_minutes": 1e6,
                           **args["train"]})
    stamps: list[float] = []

    def on_step(info: StepInfo) -> None:
        stamps.append(time.perf_counter())

    n = args["warmup"] + args["timed"]
    spec = RunSpec(name=args["name"], model=mcfg, train=tcfg, src=("astronaut",), dst=("hopper",),
                   preset=args["preset"], iters=n)
    t0 = time.perf_counter()
    with Workspace.open(args["ws"]) as ws:
        res = train(ws, spec, on_step=on_step)
    steps = [b - a for a, b in zip([t0, *stamps[:-1]], stamps, strict=True)]
    timed = steps[args["warmup"]:]
    med = statistics.median(timed)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    peak_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    return {"s_per_iter": round(med, 3), "images_per_s": round(2 * tcfg.batch / med, 2),
            "peak_gib": round(peak, 2), "peak_worker_gib": round(peak_children, 2),
            "params_m": round(param_counts(build_model(mcfg))["total"] / 1e6, 1), "resolution": mcfg.resolution,
            "arch": mcfg.arch, "batch": tcfg.batch, "precision": res.precision, "workers": tcfg.workers,
            "iters_timed": len(timed), "steps_s": [round(s, 2) for s in steps]}


def inference(ws: Path, names: list[str], batch: int = 8, repeats: int = 5) -> dict[str, Any]:
    """Swap throughput (faces/s) of trained models with PyTorch vs ONNX Runtime on the CPU."""
    import numpy as np

    from doppel.train.swapper import load_swapper

    out: dict[str, Any] = {}
    for name in names:
        mdir = ws / "models" / name
        row: dict[str, Any] = {}
        for runtime in ("torch", "onnx"):
            sw = load_swapper(mdir, runtime=runtime)  # type: ignore[arg-type]
            faces = np.random.default_rng(0).random((batch, sw.resolution, sw.resolution, 3), dtype=np.float32)
            sw.swap(faces)
            ts = []
            for _ in range(repeats):
                t = time.perf_counter()
                sw.swap(faces)
                ts.append(time.perf_counter() - t)
            row[f"{runtime}_faces_per_s"] = round(batch / statistics.median(ts), 2)
        row["faster"] = "onnx" if row["onnx_faces_per_s"] > row["torch_faces_per_s"] else "torch"
        out[name] = row
    return out


def _run_child(args: dict[str, Any]) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(args)], capture_output=True, text=True,
                          env=env, timeout=3600)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(quick: bool) -> dict[str, Any]:
    load_before = os.getloadavg()
    names = list(QUICK) if quick else list(CONFIGS)
    warmup, timed = (2, 4) if quick else (5, 35)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        ws = _workspace(Path(tmp), 64)
        for i, name in enumerate(names):
            preset_name, model, train = CONFIGS[name]
            t = timed if preset_name != "gpu-256" else max(4, timed // 3)
            results[name] = {**_run_child({"ws": str(ws), "name": f"b{i}", "preset": preset_name, "model": model,
                                           "train": train, "warmup": warmup, "timed": t}),
                             "loadavg": [round(x, 2) for x in os.getloadavg()]}
        infer_models = {f"b{i}": name for i, name in enumerate(names) if name in ("preset cpu", "preset gpu-128")}
        inf = {infer_models[k]: v for k, v in inference(ws, list(infer_models)).items()}
    head = results["saehd-liae-128 bf16"]
    passed = ("error" not in head and head["images_per_s"] >= TARGET_IPS
              and head["peak_gib"] <= ANCHOR["liae-128"]["peak_gib"])
    load_after = os.getloadavg()
    table = ["| configuration | params (M) | s/iter | images/s | peak RSS GiB | precision | workers | load |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        if "error" in r:
            table.append(f"| {name} | error: {r['error']} | | | | | | |")
            continue
        table.append(f"| {name} | {r['params_m']} | {r['s_per_iter']} | {r['images_per_s']} | {r['peak_gib']} | "
                     f"{r['precision']} | {r['workers']} | {r['loadavg'][0]} |")
    table.append("| DeepFaceLab SAEHD liae-ud 128 (anchor) | 82.4 | 6.76 | 2.37 | 5.3 | fp32 | 2 | alone |")
    table.append("| DeepFaceLab SAEHD df-ud 128 (anchor) | 54.5 | 5.34 | 3.00 | 3.9 | fp32 | 2 | alone |")
    table += ["", "| model | torch faces/s | onnx faces/s | faster |", "|---|---|---|---|"]
    for name, r in inf.items():
        table.append(f"| {name} | {r['torch_faces_per_s']} | {r['onnx_faces_per_s']} | {r['faster']} |")
    ips = head.get("images_per_s", 0)
    return {"target": f">= {TARGET_IPS} images/s at SAEHD default capacity (liae-ud 128, batch 8), "
                      f"peak <= {ANCHOR['liae-128']['peak_gib']} GiB, measured alone",
            "passed": bool(passed),
            "headline": f"SAEHD capacity, {head.get('precision')}: {ips} img/s ({ips / 2.37:.2f}x DFL's fp32), "
                        f"peak {head.get('peak_gib')} GiB (load {head.get('loadavg', ['?'])[0]})",
            "configs": results, "inference": inf, "anchor": ANCHOR, "quick": quick,
            "loadavg_before": [round(x, 2) for x in load_before], "loadavg_after": [round(x, 2) for x in load_after],
            "table": "\n".join(table)}


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        print(json.dumps(child(json.loads(sys.argv[2]))))
    else:
        res = run("--quick" in sys.argv)
        print(json.dumps({k: v for k, v in res.items() if k != "table"}, indent=2))
        print(res["table"])
