"""Quality lab: one pair, one named recipe, every quality metric, in a fresh one-thread child process.

    python bench/quality_lab.py d18-d19 baseline (--minutes M | --cpu-minutes M | --steps N) [--tag NAME]
    python bench/quality_lab.py d18-d19 oracle96 [--tag NAME]

The research harness behind ``research/ablation.md`` (recipes: ``research/recipes.py``). Steps, in the
child (``torch``/OpenCV/BLAS limited to one thread):

1. workspace: a copy of a cached workspace holding all six shared clips extracted by doppel's own
   extraction at 384 px (built once under ``research/cache/``), with a consent record for every
   person (basis ``public-domain-demo``, as ``bench_quality.py`` records it); all six identities stay
   in it, so "nearest identity" chooses among six people;
2. hold-out: a contiguous stretch of the source clip (``HOLDOUT`` of its frames) is excluded from the
   source face set, so neither the face model nor a detail network ever trains on it;
3. train the recipe for ``--minutes`` of wall clock, ``--cpu-minutes`` of this process's CPU time
   (a loaded machine then changes how long a run takes, not what it trains) or ``--steps``;
4. swap: merge the model into the destination clip (the recipe's merge settings) and ``doppel eval``
   it (identity on every 2nd frame, expression, pose, sharpness ratio, warp error, gaze);
5. self-swap: the held-out source frames re-rendered with the source as the destination
   (:func:`doppel.workflow.evaluate.self_swap`) and compared with the truth inside the face at native
   resolution (SSIM, PSNR, GMSD, sharpness ratio); with ``--sharpen-control`` the same with the
   merge's ``sharpen`` at 1.0;
6. write ``research/results/<tag>.json`` and the contact sheets (``research/sheets/``, never
   committed: they show the shared footage).
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

ROOT = Path(os.environ.get("DOPPEL_LAB_ROOT") or Path(__file__).resolve().parents[1])  # the child runs a copy
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "research"))
MEDIA = ROOT.parent / "shared" / "media" if (ROOT.parent / "shared").is_dir() else Path("/work/shared/media")
CACHE = ROOT / "research" / "cache"
RESULTS = ROOT / "research" / "results"
SHEETS = ROOT / "research" / "sheets"
CLIPS = {"d0": "lp_d0_asian_man_greenscreen.mp4", "d3": "lp_d3_woman_expressions.mp4",
         "d12": "lp_d12_man_talking_gesturing.mp4", "d18": "lp_d18_man_neutral_studio.mp4",
         "d19": "lp_d19_man_glasses_studio.mp4", "s18": "lp_s18_woman_redhair_720p.mp4"}
EXTRACT_SIZE = 384   # aligned crops: the faces are 310-420 px in these plates ('full' crop side)
HOLDOUT = (0.6, 0.8)  # the source frames held out of training: this contiguous fraction of the clip
EMBED_EVERY = 2  # identity embedded on every 2nd compared frame (as the DFL anchor measured it)
EVAL_KEYS = ("id_src_wins", "id_retrieval", "id_match_src", "id_sim_src", "id_sim_dst", "expression_nme",
             "pose_error_deg", "mouth_corr", "eye_corr", "flicker_ratio", "seam_score", "frames_compared",
             "frames_face_lost", "jitter_px", "jitter_px_input")
SWAP_KEYS = ("sharpness_ratio", "sharpness_p10", "sharpness_p90", "warp_error_ratio", "warp_error_p95",
             "warp_error_normalised", "warp_pairs", "gaze_corr", "gaze_err")


# --- 1. the cached workspace -------------------------------------------------------------------------
def cached_workspace() -> Path:
    """All six clips extracted once (doppel's own extraction), with a consent record per person."""
    from doppel.extract.config import ExtractConfig
    from doppel.provenance.consent import add_consent
    from doppel.workflow.extract import extract
    from doppel.workflow.workspace import create_workspace

    path = CACHE / f"ws-{EXTRACT_SIZE}"
    if (path / "done").is_file():
        return path
    shutil.rmtree(path, ignore_errors=True)
    with create_workspace(path) as ws:
        for name, clip in CLIPS.items():
            add_consent(ws, name, f"person in the shared clip {clip}", "doppel quality research (testing only)",
                        "public-domain-demo")
            extract(ws, name, MEDIA / clip, config=ExtractConfig(size=EXTRACT_SIZE))
    (path / "done").write_text("ok\n")
    return path


def hold_out(ws: Any, identity: str) -> list[Any]:
    """Exclude the contiguous ``HOLDOUT`` stretch of ``identity``'s faces from its face set; returns them."""
    recs = sorted(ws.faces.of(identity), key=lambda f: (f.clip_id, f.frame_index))
    lo, hi = int(len(recs) * HOLDOUT[0]), int(len(recs) * HOLDOUT[1])
    held = recs[lo:hi]
    ws.faces.exclude({f.id: "holdout" for f in held})
    return held


# --- 3. training -------------------------------------------------------------------------------------
def train_recipe(ws: Any, recipe: Any, src: str, dst: str, minutes: float | None, steps: int | None,
                 cpu_minutes: float | None) -> dict[str, Any]:
    """Train the recipe's phases, then what it trains after the face model. With ``cpu_minutes`` the
    budget is this process's CPU time (one thread), so a loaded machine does not change the result."""
    from doppel.train.loop import RunSpec
    from doppel.workflow.train import train

    cpu0, t0 = time.process_time(), time.perf_counter()
    phases = recipe.phases(minutes, steps, cpu_minutes)
    results = []
    for spec_kwargs in phases:
        stop = None
        if "cpu_minutes" in spec_kwargs:
            end = time.process_time() + spec_kwargs.pop("cpu_minutes") * 60

            def stop(end: float = end) -> bool:
                return time.process_time() >= end
        res = train(ws, RunSpec(name="m", src=(src,), dst=(dst,), preset="cpu", **spec_kwargs),
                    **({"should_stop": stop} if stop else {}))
        results.append({"step": res.step, "seconds": round(res.seconds, 1), "images_per_s": round(res.images_per_s, 2),
                        "losses": {k: round(v, 5) for k, v in res.losses.items()}, "precision": res.precision})
    extra = recipe.after_training(ws, "m", src, minutes, steps, cpu_minutes)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    last = results[-1]
    n_img = sum(2 * p["train"].batch * (r["step"] - (results[i - 1]["step"] if i else 0))
                for i, (p, r) in enumerate(zip(phases, results, strict=True)))
    train_cpu = cpu - (extra.get("detail_cpu_s", 0.0) if extra else 0.0)
    return {"steps": last["step"], "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
            "images_per_s": round(n_img / max(1e-6, sum(r["seconds"] for r in results)), 2),
            "images_per_cpu_s": round(n_img / max(1e-6, train_cpu), 2),
            "phases": results, "extra": extra}


# --- the child -------------------------------------------------------------------------------------
def _keep_run(tag: str, model: Path, db: Path) -> None:
    """Keep a run's model folder and database in the cache (``research/cache/runs/TAG``), to merge and look at later
    or to reuse with ``--from``."""
    keep = CACHE / "runs" / tag
    shutil.rmtree(keep, ignore_errors=True)
    shutil.copytree(model, keep / "m")
    shutil.copyfile(db, keep / "doppel.db")


def child(pair: str, recipe_name: str, minutes: float | None, steps: int | None, tag: str, work: Path,
          reuse: str | None = None, cpu_minutes: float | None = None, sharpen_control: bool = False
          ) -> dict[str, Any]:
    import dataclasses

    import cv2
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    from recipes import recipe as get_recipe

    from doppel.store import Workspace
    from doppel.workflow.evaluate import evaluate, request_for_render, self_swap
    from doppel.workflow.merge import MergeRequest, merge

    src, dst = pair.split("-")
    recipe = get_recipe(recipe_name)
    times: dict[str, float] = {}
    t = time.perf_counter()
    shutil.copytree(cached_workspace(), work / "ws")
    times["workspace"] = time.perf_counter() - t
    out: dict[str, Any] = {"tag": tag, "pair": pair, "recipe": recipe_name, "minutes": minutes, "steps_budget": steps,
                           "cpu_minutes": cpu_minutes, "recipe_spec": recipe.describe()}
    SHEETS.mkdir(parents=True, exist_ok=True)
    ws = Workspace.open(work / "ws")
    try:
        held = hold_out(ws, src)
        frames = sorted(f.frame_index for f in held)
        out["holdout_frames"] = [frames[0], frames[-1], len(frames)]
        # 3. train (or reuse the face model of an earlier run, training only what comes after it)
        t = time.perf_counter()
        if reuse is None:
            out["train"] = train_recipe(ws, recipe, src, dst, minutes, steps, cpu_minutes)
            _keep_run(tag, ws.models_dir() / "m", work / "ws" / "doppel.db")
        else:
            ws.close()
            shutil.rmtree(work / "ws" / "models" / "m", ignore_errors=True)
            shutil.copytree(CACHE / "runs" / reuse / "m", work / "ws" / "models" / "m")
            shutil.copyfile(CACHE / "runs" / reuse / "doppel.db", work / "ws" / "doppel.db")
            detail = work / "ws" / "models" / "m" / "detail.safetensors"
            # the face model alone, or with a detail network trained afresh for this recipe
            prior_spec = json.loads((RESULTS / f"{reuse}.json").read_text())["recipe_spec"]
            same_detail = all(prior_spec.get(k) == getattr(recipe.spec, k)
                              for k in ("detail", "detail_config", "detail_fraction"))
            if recipe.spec.detail is None or not same_detail or os.environ.get("LAB_RETRAIN_DETAIL"):
                for name in ("detail.safetensors", "detail.json"):
                    (detail.parent / name).unlink(missing_ok=True)
            ws = Workspace.open(work / "ws")
            prior = json.loads((RESULTS / f"{reuse}.json").read_text())["train"]
            if recipe.spec.detail is not None and not detail.is_file():  # train one for this face model
                extra = recipe.after_training(ws, "m", src, minutes, steps, cpu_minutes)
                _keep_run(tag, ws.models_dir() / "m", CACHE / "runs" / reuse / "doppel.db")
            else:
                extra = {k: v for k, v in (prior.get("extra") or {}).items() if recipe.spec.detail is not None}
            out["train"] = {**prior, "reused_from": reuse, "extra": extra}
        times["train"] = time.perf_counter() - t
        swapper = recipe.swapper(ws, "m")
        settings = recipe.merge_settings()
        # 4. swap into the destination and eval it (every metric, the new ones included)
        t = time.perf_counter()
        merged = merge(ws, MergeRequest(input=MEDIA / CLIPS[dst], output=work / "swap.mp4", model="m",
                                        settings=settings), swapper=swapper)
        times["merge"] = time.perf_counter() - t
        out["merge_fps"] = round(merged.fps, 2)
        t = time.perf_counter()
        req = dataclasses.replace(request_for_render(ws, merged.render_uid), embed_every=EMBED_EVERY,
                                  sheet=SHEETS / f"{tag}-swap.png")
        report = evaluate(ws, req).to_dict()
        times["eval"] = time.perf_counter() - t
        out["eval"] = {k: report[k] for k in EVAL_KEYS}
        out["swap"] = {k: report[k] for k in SWAP_KEYS}
        # 5. self-swap of the held-out source frames
        t = time.perf_counter()
        own = self_swap(ws, "m", work / "self.mp4", sheet=SHEETS / f"{tag}-self.png", settings=settings,
                        faces=held, swapper=swapper)
        out["selfswap"] = {k: v for k, v in own.to_dict().items() if k != "per_frame"}
        if sharpen_control:
            sharp = self_swap(ws, "m", work / "self-sharpen.mp4", settings=settings.with_changes({"sharpen": 1.0}),
                              faces=held, swapper=swapper)
            out["selfswap_sharpen1"] = {k: v for k, v in sharp.to_dict().items() if k != "per_frame"}
        times["selfswap"] = time.perf_counter() - t
    finally:
        ws.close()
    out["seconds"] = {k: round(v, 1) for k, v in times.items()}
    out["cpu_s"] = round(time.process_time(), 1)
    out["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("pair", help="SRC-DST, e.g. d18-d19")
    ap.add_argument("recipe", help="a name from research/recipes.py (combine with '+')")
    ap.add_argument("--minutes", type=float)
    ap.add_argument("--steps", type=int)
    ap.add_argument("--cpu-minutes", type=float, help="training budget in CPU minutes of the one-thread child")
    ap.add_argument("--sharpen-control", action="store_true",
                    help="also merge the self-swap with sharpen=1.0 and measure it (the sharpen-filter control)")
    ap.add_argument("--tag")
    ap.add_argument("--from", dest="reuse", help="reuse the models of an earlier run (its tag): its face model, "
                    "and its detail network when the recipe has one (trained now if that run had none)")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    tag = a.tag or f"{a.pair}-{a.recipe}" + (f"-{a.steps}s" if a.steps else f"-{a.minutes:g}m" if a.minutes
                                             else f"-{a.cpu_minutes:g}cpu" if a.cpu_minutes else "")
    if a.child is not None:
        result = child(a.pair, a.recipe, a.minutes, a.steps, tag, a.child, a.reuse, a.cpu_minutes, a.sharpen_control)
        sys.stdout.write(json.dumps(result, default=float) + "\n")
        return
    budgets = sum(x is not None for x in (a.minutes, a.steps, a.cpu_minutes))
    if budgets != 1 and not a.recipe.startswith("oracle"):
        raise SystemExit("give exactly one of --minutes, --cpu-minutes or --steps")
    load = os.getloadavg()
    # the commit of the snapshot the child runs (read now: later commits do not reach it)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "src"], capture_output=True, text=True)
    code = commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    with tempfile.TemporaryDirectory(prefix="doppel-lab-") as tmp:
        # the child runs a snapshot of the code (edits made while it trains do not reach it)
        for part in ("src", "bench", "research"):
            shutil.copytree(ROOT / part, Path(tmp) / "code" / part, ignore=shutil.ignore_patterns(
                "__pycache__", "cache", "logs", "results", "sheets"))
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
               "PYTHONPATH": str(Path(tmp) / "code" / "src"), "DOPPEL_LAB_ROOT": str(ROOT)}
        cmd = [sys.executable, str(Path(tmp) / "code" / "bench" / "quality_lab.py"), a.pair, a.recipe, "--tag", tag,
               "--child", tmp]
        cmd += ["--minutes", str(a.minutes)] if a.minutes is not None else []
        cmd += ["--steps", str(a.steps)] if a.steps is not None else []
        cmd += ["--from", a.reuse] if a.reuse else []
        cmd += ["--cpu-minutes", str(a.cpu_minutes)] if a.cpu_minutes is not None else []
        cmd += ["--sharpen-control"] if a.sharpen_control else []
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-5000:])
        raise SystemExit(f"{tag}: child failed ({proc.returncode})")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    data["code"] = code
    data["load_before"] = [round(x, 2) for x in load]
    data["load_after"] = [round(x, 2) for x in os.getloadavg()]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{tag}.json").write_text(json.dumps(data, indent=2) + "\n")
    print(json.dumps({k: data[k] for k in ("tag", "eval", "swap", "selfswap")}, indent=1))


if __name__ == "__main__":
    main()
