"""Merge benchmark: end-to-end throughput on the shared 720p clip, and flicker ratio per shared clip.

Throughput: ``doppel.merge.pipeline.merge`` on ``lp_s18_woman_redhair_720p.mp4`` (1280x720, 282
frames) with a real architecture at the ``cpu`` and ``gpu-128`` presets. Until a trained model of
these identities exists the networks have **untrained (randomly initialised) weights**: speed does
not depend on training, quality does, so only the speed figures mean anything here. Each run is a
fresh subprocess (so its peak RSS is its own) with an empty inference cache. Extraction of the
clip happens once, before timing. Also measured: pure inference per face, PyTorch vs ONNX Runtime.

Because the machine is shared, the wall-clock frames/s depends on what else runs; the run's own
CPU time per frame (all threads: user + system) does much less, and ``2 / CPU s per frame`` is the
rate two idle cores could reach if every stage overlapped perfectly (an upper bound, not a
measurement of wall time).

Flicker: frame-to-frame mean absolute change inside the face's landmark hull, output over input
(doppel's bar: <= 1.2), per shared clip. Without a trained model it is measured with two stand-in
swappers that isolate what merge itself adds (warp there and back, mask, colour transfer and its
temporal smoothing, blend, watermark): ``reconstruct`` returns the aligned destination crop, and
``recolour`` returns it with its red and blue channels swapped (so colour transfer works hard).

Run: ``python bench/run.py merge`` or ``python bench/bench_merge.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MEDIA = ROOT.parent / "shared" / "media"
CLIP_720P = "lp_s18_woman_redhair_720p.mp4"
CLIPS = ["lp_d18_man_neutral_studio.mp4", "lp_d19_man_glasses_studio.mp4", "lp_d3_woman_expressions.mp4",
         "lp_d12_man_talking_gesturing.mp4", "lp_d0_asian_man_greenscreen.mp4", CLIP_720P]
WORKDIR = Path(tempfile.gettempdir()) / "doppel-bench-merge"
PLATE_4K = "plate_4k.mp4"  # made from the 720p clip, 3x upscaled (Lanczos): 3840x2160, faces ~1,000 px
TARGET_4K_FPS = 4.0
TARGET_FPS = 12.0
TARGET_FLICKER = 1.2


# -- workspace set-up (not timed) ----------------------------------------------------------------
def _workspace(clips: list[str]) -> Path:
    from doppel.extract.config import content_hash
    from doppel.provenance.consent import add_consent
    from doppel.store import Workspace
    from doppel.workflow.extract import extract as extract_clip
    from doppel.workflow.workspace import create_workspace

    root = WORKDIR / "ws"
    if not root.exists():
        with create_workspace(root) as ws:
            add_consent(ws, "src", "doppel benchmark", "benchmark only", "public-domain-demo")
    with Workspace.open(root) as ws:
        for name in clips:
            clip = ws.clips.by_hash(content_hash(_clip_path(name)))
            ident = _ident(name)
            if clip is None or not ws.faces.extracted(clip.id, ident):
                extract_clip(ws, ident, _clip_path(name))
    return root


def _clip_path(clip: str) -> Path:
    return WORKDIR / clip if clip == PLATE_4K else MEDIA / clip


def _make_4k(frames: int) -> None:
    """The 4K plate: the 720p clip's first ``frames`` frames upscaled 3x, H.264 CRF 16, with its audio."""
    import cv2

    from doppel.io.video import probe, read_frames
    from doppel.io.writer import VideoWriter

    out = WORKDIR / PLATE_4K
    if out.exists() and probe(out).frame_count == frames:
        return
    src = MEDIA / CLIP_720P
    info = probe(src)
    with VideoWriter(out, width=3840, height=2160, fps=info.rate, crf=16, preset="veryfast", audio_from=src) as w:
        for f in read_frames(src, stop=frames):
            w.write(cv2.resize(f.image, (3840, 2160), interpolation=cv2.INTER_LANCZOS4))


def _ident(clip: str) -> str:
    return "dst-s18-4k" if clip == PLATE_4K else "dst-" + clip.split("_")[1]


def _register_model(ws: Any, name: str, preset: str, dst: str, resolution: int | None = None) -> None:
    """A models row (and, for a real preset, a model folder with untrained weights in training's format)."""
    import torch

    from doppel.train import checkpoint, detail
    from doppel.train.config import PRESETS, DetailConfig
    from doppel.train.models import build_model
    from doppel.train.models.detail import DetailNet

    cfg = PRESETS[preset].model if preset in PRESETS else PRESETS["cpu"].model.model_copy(
        update={"resolution": resolution or 128})
    ws.models.forget(name)
    folder = ws.models_dir() / name
    folder.mkdir(exist_ok=True)
    if preset in PRESETS and not (folder / checkpoint.WEIGHTS).is_file():
        torch.manual_seed(0)
        checkpoint.write_config(folder, cfg)
        checkpoint.save_weights(folder, build_model(cfg), {"note": "untrained, for the merge benchmark"})
    if preset in PRESETS and PRESETS[preset].detail and not (folder / detail.WEIGHTS).is_file():
        # the preset trains a detail network, so its merge runs one: the same cost, untrained
        detail.save_detail(folder, DetailNet(DetailConfig()), {"note": "untrained, for the merge benchmark"})
    ws.identities.ensure("src")
    ws.models.register(name, folder_rel=f"models/{name}", arch=cfg.arch, preset=preset, resolution=cfg.resolution,
                       face_type=cfg.face_type, src="src", dst=dst, base=None, step=0)


# -- swappers used by the benchmark -------------------------------------------------------------------
class TorchSwapper:
    """A real architecture at a preset, untrained weights, PyTorch fp32 (for the runtime comparison)."""

    def __init__(self, preset: str) -> None:
        import torch

        from doppel.train.config import PRESETS
        from doppel.train.models import build_model

        torch.manual_seed(0)
        cfg = PRESETS[preset].model
        self.resolution, self.face_type = cfg.resolution, cfg.face_type
        self.net = build_model(cfg).eval()

    def swap(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        with torch.inference_mode():
            face, mask = self.net.swap(torch.from_numpy(faces).permute(0, 3, 1, 2).contiguous())
        return face.permute(0, 2, 3, 1).numpy(), mask.permute(0, 2, 3, 1).numpy()


class StandIn:
    """Flicker stand-ins: the aligned destination crop itself, or recoloured (benchmark only)."""

    def __init__(self, mode: str, resolution: int = 128) -> None:
        self.mode, self.resolution, self.face_type = mode, resolution, "full"

    def swap(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = faces[..., ::-1] if self.mode == "recolour" else faces
        return np.ascontiguousarray(out, np.float32), np.ones((*faces.shape[:3], 1), np.float32)


# -- one measured merge, in its own process ---------------------------------------------------------
def worker(kind: str, clip: str, batch: int, quick: bool) -> dict[str, Any]:
    from doppel.store import Workspace
    from doppel.workflow.merge import MergeRequest, merge
    from doppel.workflow.models import find_model, load_model

    root = WORKDIR / "ws"
    if kind.startswith("ext:"):  # a model trained in another workspace: "ext:WS|MODEL"
        ws_path, _, model_name = kind.removeprefix("ext:").partition("|")
        root, kind = Path(ws_path), f"model:{model_name}"
    trained = kind.startswith("model:")
    real = trained or kind in ("cpu", "gpu-128")
    swapper: Any = None if real else StandIn(kind)  # real models load through doppel.train.load_swapper
    name = kind.removeprefix("model:") if trained else f"bench-{kind}"
    out = WORKDIR / f"out-{name}-{clip}"
    with Workspace.open(root) as ws:
        if not trained:
            _register_model(ws, name, kind, _ident(clip), None if real else swapper.resolution)
        shutil.rmtree(ws.renders_dir() / "cache", ignore_errors=True)
        t0 = time.perf_counter()
        if real:  # load once outside the timing (ONNX export on first use), as the product does per run
            swapper = load_model(find_model(ws, name))
        load_s = time.perf_counter() - t0
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        report = merge(ws, MergeRequest(input=_clip_path(clip), output=out, model=name, batch=batch),
                       swapper=swapper)
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        step = find_model(ws, name).step
    cpu_s = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    out.unlink(missing_ok=True)
    out.with_suffix(".c2pa").unlink(missing_ok=True)
    return {"runtime": type(swapper).__name__, "model_step": step, "model_load_s": round(load_s, 2),
            "frames": report.frames,
            "swapped": report.swapped, "seconds": round(report.seconds, 2),
            "fps": round(report.fps, 2), "cpu_ms_per_frame": round(cpu_s / max(report.frames, 1) * 1000, 1),
            "fps_bound_2_idle_cores": round(2 * report.frames / cpu_s, 1) if cpu_s else None,
            "flicker_ratio": report.flicker_ratio, "stages_s": report.stages,
            "stage_ms_per_frame": {k: round(v / max(report.frames, 1) * 1000, 1) for k, v in report.stages.items()},
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "occluded_frames": len(report.occluded_frames), "shot_cuts": report.shot_cuts,
            "loadavg": [round(x, 2) for x in os.getloadavg()]}


def _spawn(kind: str, clip: str, batch: int, quick: bool) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", kind, clip, str(batch)] + (["--quick"] if quick else [])
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"bench worker {kind} {clip} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _trained_models(clips: list[str]) -> list[tuple[str, str]]:
    """Models trained in the bench workspace (e.g. ``doppel train WS --src dst-d19 --dst dst-d18``), each
    with the shared clip of its destination identity."""
    from doppel.store import Workspace
    from doppel.workflow.models import find_model

    out = []
    with Workspace.open(WORKDIR / "ws") as ws:
        for name in [n for n in ws.models.names() if not n.startswith("bench-")]:
            info = find_model(ws, name)
            clip = next((c for c in clips if _ident(c) == info.dst_identity), None)
            if clip is not None and (info.path / "model.safetensors").is_file():
                out.append((info.name, clip))
    return out


# -- pure inference: PyTorch vs ONNX Runtime ------------------------------------------------------------
def inference_runtimes(preset: str, batch: int, seconds: float) -> dict[str, float]:
    import onnxruntime as ort
    import torch

    sw = TorchSwapper(preset)
    x = np.random.default_rng(0).random((batch, sw.resolution, sw.resolution, 3), dtype=np.float32)

    def timed(fn: Any) -> float:
        fn()
        t, n = time.perf_counter(), 0
        while time.perf_counter() - t < seconds or n < 2:
            fn()
            n += 1
        return round((time.perf_counter() - t) / n / batch * 1000, 2)

    out = {"torch_fp32_ms_per_face": timed(lambda: sw.swap(x))}

    class Swap(torch.nn.Module):
        def __init__(self, net: torch.nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return self.net.swap(t)  # type: ignore[operator,no-any-return]

    path = WORKDIR / f"{preset}.onnx"
    torch.onnx.export(Swap(sw.net), (torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(),), str(path),
                      input_names=["face"], output_names=["swapped", "mask"], dynamic_axes={"face": {0: "n"}},
                      dynamo=False)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    xn = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    out["onnxruntime_ms_per_face"] = timed(lambda: sess.run(None, {"face": xn}))
    return out


# -- the benchmark -------------------------------------------------------------------------------------
def run(quick: bool) -> dict[str, Any]:
    if not (MEDIA / CLIP_720P).exists():
        return {"skipped": f"{MEDIA} absent", "passed": False, "target": "needs shared media"}
    WORKDIR.mkdir(parents=True, exist_ok=True)
    clips = [*CLIPS[:1], CLIP_720P] if quick else CLIPS
    _workspace(clips)
    result: dict[str, Any] = {"weights": "untrained (random init): speed only", "batch": 8}
    throughput: dict[str, Any] = {}
    for preset in ("cpu", "gpu-128"):
        runs = [_spawn(preset, CLIP_720P, 8, quick) for _ in range(1 if quick else 2)]
        fps = sorted(r["fps"] for r in runs)
        throughput[preset] = {"fps_median": round(float(np.median(fps)), 2), "fps_runs": fps, **runs[0]}
    result["throughput_720p"] = throughput
    _make_4k(30 if quick else 90)
    _workspace([PLATE_4K])
    runs = [_spawn("cpu", PLATE_4K, 8, quick) for _ in range(1 if quick else 2)]
    result["throughput_4k"] = {"fps_median": round(float(np.median([r["fps"] for r in runs])), 2), **runs[0]}
    result["inference_runtimes"] = {p: inference_runtimes(p, 8, 2.0 if quick else 5.0) for p in ("cpu", "gpu-128")}
    flicker: dict[str, Any] = {}
    for clip in clips:
        flicker[clip] = {mode: _spawn(mode, clip, 16, quick)["flicker_ratio"] for mode in ("reconstruct", "recolour")}
    for name, clip in _trained_models(clips):
        r = _spawn(f"model:{name}", clip, 8, quick)
        flicker[clip][f"trained {name} (step {r['model_step']})"] = r["flicker_ratio"]
    # models trained elsewhere: DOPPEL_BENCH_MERGE_MODELS="WS|MODEL|CLIP;..." (CLIP: a shared clip's file name)
    for entry in filter(None, os.environ.get("DOPPEL_BENCH_MERGE_MODELS", "").split(";")):
        ws_path, model_name, clip = entry.split("|")
        r = _spawn(f"ext:{ws_path}|{model_name}", clip, 8, quick)
        flicker.setdefault(clip, {})[f"trained {model_name} (step {r['model_step']})"] = r["flicker_ratio"]
    result["flicker"] = flicker
    worst = max(r for v in flicker.values() for r in v.values() if r is not None)
    cpu_fps = throughput["cpu"]["fps_median"]
    result.update(
        target=(f">= {TARGET_FPS:g} frames/s at 720p and >= {TARGET_4K_FPS:g} at 4K with a cpu-preset model; "
                f"flicker ratio <= {TARGET_FLICKER}"),
        passed=bool(cpu_fps >= TARGET_FPS and worst <= TARGET_FLICKER
                    and result["throughput_4k"]["fps_median"] >= TARGET_4K_FPS),
        headline=(f"720p, fp32 inference: cpu preset {cpu_fps:.1f} fps "
                  f"(4K {result['throughput_4k']['fps_median']:.1f} fps), "
                  f"gpu-128 {throughput['gpu-128']['fps_median']:.1f} fps "
                  f"(untrained weights), peak {throughput['cpu']['peak_rss_mb']:.0f} MB; "
                  f"flicker worst {worst:.2f} (stand-in swappers)"),
        table=_table({**throughput, "cpu at 4K": result["throughput_4k"]}, flicker),
    )
    return result


def _table(throughput: dict[str, Any], flicker: dict[str, Any]) -> str:
    lines = ["| preset | fps (median) | CPU ms/frame (all threads) | 2 / CPU s per frame | busy ms/frame per stage "
             "| peak MB | load |", "|---|---|---|---|---|---|---|"]
    for preset, r in throughput.items():
        stages = ", ".join(f"{k} {v}" for k, v in r["stage_ms_per_frame"].items())
        lines.append(f"| {preset} | {r['fps_median']} | {r['cpu_ms_per_frame']} | {r['fps_bound_2_idle_cores']} | "
                     f"{stages} | {r['peak_rss_mb']} | {r['loadavg'][0]} |")
    lines += ["", "| clip | swapper | flicker ratio |", "|---|---|---|"]
    for clip, v in flicker.items():
        lines += [f"| {clip} | {swapper} | {ratio:.3f} |" for swapper, ratio in v.items() if ratio is not None]
    return "\n".join(lines)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--worker", nargs=3, metavar=("KIND", "CLIP", "BATCH"))
    args = ap.parse_args()
    if args.worker:
        kind, clip, batch = args.worker
        print(json.dumps(worker(kind, clip, int(batch), args.quick)))
    else:
        print(json.dumps(run(args.quick), indent=2))
