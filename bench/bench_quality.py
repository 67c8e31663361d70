"""Swap quality per compute on real footage, and what a base model buys.

Shared talking-head clips (``../shared/media``, see its ``SOURCES.md``; skipped without them).
Every run is a fresh child process with its own workspace: extract the people it needs, record a
consent for the source (basis ``public-domain-demo``: openly licensed demonstration footage, used
for testing), train the ``cpu`` preset exactly as ``doppel train --preset cpu`` would (its own
learning rate and EMA) for ``MINUTES`` of wall clock with 10 % of the faces held out, in
contiguous runs of frames, for the held-out reconstruction SSIM logged every minute; then merge the
model into the destination clip with the default settings and ``doppel eval`` the render, every
frame's identity embedded (with the detail, temporal and gaze metrics of issue 12: sharpness ratio,
warp error ratio, gaze correlation); then the self-swap (``doppel eval --self-swap``): the held-out
source frames re-rendered with the source as the destination and compared with the truth inside the
face at native resolution (SSIM, PSNR, GMSD, sharpness ratio), once with the default merge and once
with ``sharpen`` 1.0, the control that shows a sharpen filter does not buy fidelity.

Runs:

- the four suggested pairs, source -> destination: d18 -> d19, d19 -> d18, d3 -> s18, d0 -> d12, each
  trained as ``doppel train`` trains a new model: from the shipped ``cpu`` base model
  (``src/doppel/train/bases/cpu``, see its data card: d18 and d19 are held out of it, the other four
  people are in it, so only the first two pairs measure people the base never saw);
- ``from scratch``: the first pair again from random weights (``doppel train --no-base``), for what the
  base buys.

Targets: issue 3 and 7, ``id_sim_src > id_sim_dst`` on >= 90 % of frames on every pair
(``id_src_wins``); issue 3 also asks for held-out SSIM against time with and without the base model,
reported with the minutes each needs to reach the SSIM the from-scratch run ends with. Issue 12's
bars are reported per pair (``BARS``: pass or fail each), not yet part of ``passed``.

Runs go ``DOPPEL_QUALITY_JOBS`` at a time (default 2 on a 2-core machine), each child limited to
``cores // jobs`` threads: with two side by side, every model gets one core for its 30 minutes,
half of what the bar allows, so a pass here is a pass with room. ``DOPPEL_QUALITY_MINUTES`` and
``DOPPEL_QUALITY_PAIRS`` (e.g. ``d18-d19,d3-s18``) narrow it (the first one named is also trained from
scratch); ``--quick``: the first pair, from the base and from scratch, 3 minutes each. Contact sheets are copied to
``bench/results/quality-<src>-<dst>.png`` and the SSIM curves drawn in ``quality-ssim.png``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
MEDIA = BENCH.parents[1] / "shared" / "media"
CLIPS = {"d0": "lp_d0_asian_man_greenscreen.mp4", "d3": "lp_d3_woman_expressions.mp4",
         "d12": "lp_d12_man_talking_gesturing.mp4", "d18": "lp_d18_man_neutral_studio.mp4",
         "d19": "lp_d19_man_glasses_studio.mp4", "s18": "lp_s18_woman_redhair_720p.mp4"}
PAIRS = [("d18", "d19"), ("d19", "d18"), ("d3", "s18"), ("d0", "d12")]
MINUTES, QUICK_MINUTES = 30.0, 3.0
HOLDOUT = 0.1
BAR = 0.9
METRICS = ("id_src_wins", "id_match_src", "id_match_src_input",
           "id_sim_src", "id_sim_dst", "id_retrieval", "id_sim_src_input", "id_sim_dst_input",
           "expression_nme", "pose_error_deg", "mouth_corr", "eye_corr", "jitter_px", "jitter_px_input",
           "flicker_ratio", "seam_score", "frames", "frames_compared", "frames_face_lost", "frames_embedded",
           "sharpness_ratio", "sharpness_p10", "sharpness_p90", "warp_error_ratio", "warp_error_p95",
           "warp_error_normalised", "gaze_corr", "gaze_err")
SELF_SWAP = ("frames", "ssim", "psnr", "gmsd", "sharpness_ratio", "sharpness_p10", "sharpness_p90", "passes")
# Issue 12's bars, each (label, where, key, test): "where" is "metrics" (the swap's eval) or "self_swap".
BARS: list[tuple[str, str, str, Any]] = [
    ("sharpness >= 0.8", "metrics", "sharpness_ratio", lambda v: v >= 0.8),
    ("self-swap SSIM >= 0.85", "self_swap", "ssim", lambda v: v >= 0.85),
    ("self-swap sharpness in [0.8, 1.25]", "self_swap", "sharpness_ratio", lambda v: 0.8 <= v <= 1.25),
    ("mouth corr >= 0.85", "metrics", "mouth_corr", lambda v: v >= 0.85),
    ("eye corr >= 0.7", "metrics", "eye_corr", lambda v: v >= 0.7),
    ("NME <= 0.045", "metrics", "expression_nme", lambda v: v <= 0.045),
    ("pose <= 8 deg", "metrics", "pose_error_deg", lambda v: v <= 8),
    ("nearest identity 100%", "metrics", "id_retrieval", lambda v: v >= 1.0),
    ("source wins >= 95%", "metrics", "id_src_wins", lambda v: v >= 0.95),
    ("warp error <= 1.15", "metrics", "warp_error_ratio", lambda v: v <= 1.15),
    ("warp error p95 <= 1.3", "metrics", "warp_error_p95", lambda v: v <= 1.3),
]


# --- child process -------------------------------------------------------------------------------

def _limit_threads(threads: int) -> None:
    import cv2
    import torch

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)


def _curve(model_dir: Path) -> list[dict[str, float]]:
    with open(model_dir / "metrics.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("eval_ssim")]
    return [{"minutes": round(float(r["elapsed_s"]) / 60, 2), "step": int(r["step"]),
             "eval_ssim": round(float(r["eval_ssim"]), 4)} for r in rows]


def _train(ws: Any, name: str, src: tuple[str, ...], dst: tuple[str, ...], minutes: float, *,
           pretrain: bool = False, base: Path | None = None) -> dict[str, Any]:
    from doppel.train.config import PRESETS, train_config
    from doppel.train.loop import RunSpec
    from doppel.workflow.train import train

    p = PRESETS["cpu"]
    tcfg = train_config(**p.train_defaults(), workers=0, preview_minutes=1.0, checkpoint_minutes=10.0)
    result = train(ws, RunSpec(name=name, model=p.model, train=tcfg, src=src, dst=dst, preset="cpu",
                               pretrain=pretrain, minutes=minutes, base=base, holdout=HOLDOUT))
    return {"steps": result.step, "images_per_s": round(result.images_per_s, 2), "seconds": round(result.seconds, 1),
            "losses": result.losses, "precision": result.precision, "settings": tcfg.model_dump(),
            "curve": _curve(result.model_dir)}


def child_pair(src: str, dst: str, minutes: float, work: Path, start: str) -> dict[str, Any]:
    """One pair's run; ``start`` is ``shipped`` (the base ``doppel train`` would start from) or ``scratch``."""
    from doppel.merge.settings import MergeSettings
    from doppel.provenance.consent import add_consent
    from doppel.train import bases
    from doppel.train.config import PRESETS
    from doppel.workflow.evaluate import evaluate, request_for_render, self_swap
    from doppel.workflow.extract import extract as extract_clip
    from doppel.workflow.merge import MergeRequest, merge
    from doppel.workflow.workspace import create_workspace

    shipped = bases.for_config(PRESETS["cpu"].model)
    base = shipped[1] if shipped is not None and start == "shipped" else None
    times: dict[str, float] = {}
    with create_workspace(work / "ws") as ws:
        t = time.perf_counter()
        add_consent(ws, src, f"person in the shared clip {CLIPS[src]}", "doppel quality benchmark (testing only)",
                    "public-domain-demo")
        extract_clip(ws, src, MEDIA / CLIPS[src])
        extract_clip(ws, dst, MEDIA / CLIPS[dst])
        times["extract"] = time.perf_counter() - t
        t = time.perf_counter()
        trained = _train(ws, "m", (src,), (dst,), minutes, base=base)
        times["train"] = time.perf_counter() - t
        t = time.perf_counter()
        merged = merge(ws, MergeRequest(input=MEDIA / CLIPS[dst], output=work / f"{src}-to-{dst}.mp4", model="m"))
        times["merge"] = time.perf_counter() - t
        t = time.perf_counter()
        request = request_for_render(ws, merged.render_uid)
        request = dataclasses.replace(request, sheet=work / "sheet.png", embed_every=1)
        report = evaluate(ws, request).to_dict()
        times["eval"] = time.perf_counter() - t
        t = time.perf_counter()
        own = self_swap(ws, "m", work / "self.mp4", sheet=work / "self.png").to_dict()
        sharpened = self_swap(ws, "m", work / "self-sharpen.mp4", settings=MergeSettings(sharpen=1.0)).to_dict()
        times["self_swap"] = time.perf_counter() - t
    return {"metrics": {k: report[k] for k in METRICS}, "train": trained, "merge_fps": round(merged.fps, 2),
            "self_swap": {k: own[k] for k in SELF_SWAP}, "self_swap_sharpen1": {k: sharpened[k] for k in SELF_SWAP},
            "default_sharpen": MergeSettings().sharpen, "seconds": {k: round(v, 1) for k, v in times.items()},
            "base": bases.label(base) if base is not None else None,
            "sheet": str(work / "sheet.png"), "self_sheet": str(work / "self.png")}


# --- parent: schedule the runs ---------------------------------------------------------------------

def _spawn(args: list[str], threads: int) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "DOPPEL_BENCH_THREADS": str(threads)}
    load = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="doppel-bench-quality-") as tmp:
        proc = subprocess.run([sys.executable, __file__, "--child", *args, tmp], capture_output=True, text=True,
                              check=False, env=env)
        if proc.returncode != 0:
            lines = proc.stderr.strip().splitlines()
            return {"error": lines[-1] if lines else "child failed", "stderr": proc.stderr[-3000:]}
        data = json.loads(proc.stdout.strip().splitlines()[-1])
        for key, suffix in (("sheet", ""), ("self_sheet", "-self")):
            if args[0] == "pair" and Path(data[key]).is_file():
                name = f"quality-{args[1]}-{args[2]}{'-scratch' if args[4] == 'scratch' else ''}{suffix}.png"
                sheet = BENCH / "results" / name
                sheet.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(data[key], sheet)
                data[key] = str(sheet.relative_to(BENCH.parent))
    return {**data, "threads": threads, "load_before": load, "load_after": [round(x, 2) for x in os.getloadavg()]}


def _pairs(quick: bool) -> list[tuple[str, str]]:
    text = os.environ.get("DOPPEL_QUALITY_PAIRS")
    if text is None:
        return PAIRS[:1] if quick else PAIRS
    pairs = [tuple(p.split("-", 1)) for p in text.split(",") if p and p != "none"]
    for p in pairs:
        if len(p) != 2 or p[0] not in CLIPS or p[1] not in CLIPS:
            raise SystemExit(f"bench_quality: unknown pair {'-'.join(p)}; clips: {', '.join(CLIPS)}")
    return pairs  # type: ignore[return-value]


def _schedule(chains: list[list[tuple[str, list[str]]]], jobs: int) -> list[list[tuple[str, list[str]]]]:
    """Longest chains first onto the least-loaded worker (a chain's runs must stay in order)."""
    workers: list[list[tuple[str, list[str]]]] = [[] for _ in range(max(1, jobs))]
    for chain in sorted(chains, key=len, reverse=True):
        min(workers, key=len).extend(chain)
    return [w for w in workers if w]


def _time_to(curve: list[dict[str, float]], level: float) -> float | None:
    return next((p["minutes"] for p in curve if p["eval_ssim"] >= level), None)


def _ssim_at(curve: list[dict[str, float]], minutes: float) -> float | None:
    before = [p["eval_ssim"] for p in curve if p["minutes"] <= minutes + 0.05]
    return before[-1] if before else None


def _plot(curves: dict[str, list[dict[str, float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for label, curve in curves.items():
        if curve:
            ax.plot([p["minutes"] for p in curve], [p["eval_ssim"] for p in curve], marker=".", label=label)
    ax.set_xlabel("training minutes (wall clock)")
    ax.set_ylabel("held-out reconstruction SSIM (face hull)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def _f(x: Any, fmt: str = ".3f") -> str:
    return format(x, fmt) if isinstance(x, (int, float)) else "--"


def _table(results: dict[str, Any]) -> list[str]:
    table = ["| run | src wins | dlib match src (input) | id_sim src / dst (input) |"
             " retrieval | NME | pose deg | mouth / eye / gaze corr | sharpness (p10-p90) | warp (p95) norm | "
             "jitter px (input) | flicker | seam | final SSIM | steps | img/s | threads |", "|---|" + "---|" * 16]
    for k, r in results.items():
        m, tr = r.get("metrics", {}), r.get("train", {})
        if not m:
            table.append(f"| {k} | error: {r.get('error')} |" + " |" * 15)
            continue
        curve = tr.get("curve") or [{}]
        table.append(
            f"| {k} | {_f(m['id_src_wins'], '.0%')} | {_f(m['id_match_src'], '.0%')} "
            f"({_f(m['id_match_src_input'], '.0%')}) | {_f(m['id_sim_src'])} / {_f(m['id_sim_dst'])} "
            f"({_f(m['id_sim_src_input'])} / {_f(m['id_sim_dst_input'])}) | {_f(m['id_retrieval'], '.0%')} | "
            f"{_f(m['expression_nme'], '.4f')} | {_f(m['pose_error_deg'], '.2f')} | {_f(m['mouth_corr'], '.2f')} / "
            f"{_f(m['eye_corr'], '.2f')} / {_f(m['gaze_corr'], '.2f')} | {_f(m['sharpness_ratio'], '.2f')} "
            f"({_f(m['sharpness_p10'], '.2f')}-{_f(m['sharpness_p90'], '.2f')}) | {_f(m['warp_error_ratio'], '.2f')} "
            f"({_f(m['warp_error_p95'], '.2f')}) {_f(m['warp_error_normalised'], '.2f')} | "
            f"{_f(m['jitter_px'], '.2f')} ({_f(m['jitter_px_input'], '.2f')}) | "
            f"{_f(m['flicker_ratio'], '.2f')} | {_f(m['seam_score'], '.2f')} | {_f(curve[-1].get('eval_ssim'))} | "
            f"{tr.get('steps')} | {tr.get('images_per_s')} | {r.get('threads')} |")
    table += ["", "Self-swap (held-out source frames re-rendered, face only, native resolution) and issue 12's bars:",
              "",
              "| run | frames | SSIM | PSNR | GMSD | sharpness (p10-p90) | with sharpen 1.0: SSIM / GMSD / sharpness | "
              "bars passed |", "|---|" + "---|" * 7]
    for k, r in results.items():
        ss, sh = r.get("self_swap"), r.get("self_swap_sharpen1") or {}
        if not ss:
            continue
        passed = [label for label, ok in bars(r).items() if ok]
        failed = [label for label, ok in bars(r).items() if ok is False]
        table.append(
            f"| {k} | {ss['frames']} | {_f(ss['ssim'])} | {_f(ss['psnr'], '.1f')} | {_f(ss['gmsd'], '.4f')} | "
            f"{_f(ss['sharpness_ratio'], '.2f')} ({_f(ss['sharpness_p10'], '.2f')}-{_f(ss['sharpness_p90'], '.2f')}) | "
            f"{_f(sh.get('ssim'))} / {_f(sh.get('gmsd'), '.4f')} / {_f(sh.get('sharpness_ratio'), '.2f')} | "
            f"{len(passed)} of {len(passed) + len(failed)}; fails: {', '.join(failed) or 'none'} |")
    return table


def bars(run: dict[str, Any]) -> dict[str, bool | None]:
    """Issue 12's bars for one pair's run: True/False per bar, None where the figure is missing."""
    out: dict[str, bool | None] = {}
    for label, where, key, test in BARS:
        value = (run.get(where) or {}).get(key)
        out[label] = None if not isinstance(value, (int, float)) else bool(test(value))
    return out


def run(quick: bool) -> dict[str, Any]:
    if not all((MEDIA / c).exists() for c in CLIPS.values()):
        return {"target": "needs ../shared/media", "passed": False, "skipped": True,
                "headline": "skipped: no shared media"}
    minutes = float(os.environ.get("DOPPEL_QUALITY_MINUTES", QUICK_MINUTES if quick else MINUTES))
    jobs = int(os.environ.get("DOPPEL_QUALITY_JOBS", max(1, min(2, os.cpu_count() or 1))))
    threads = max(1, (os.cpu_count() or 1) // jobs)
    pairs = _pairs(quick)
    first = pairs[0] if pairs else PAIRS[0]
    chains = [[(f"{s}->{d}", ["pair", s, d, str(minutes), "shipped"])] for s, d in pairs]
    chains += [[(f"{first[0]}->{first[1]} from scratch", ["pair", *first, str(minutes), "scratch"])]]
    results: dict[str, Any] = {}

    def work(runs: list[tuple[str, list[str]]]) -> None:
        for key, args in runs:
            results[key] = _spawn(args, threads)

    workers = [threading.Thread(target=work, args=(w,)) for w in _schedule(chains, jobs)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()

    pair_keys = [f"{s}->{d}" for s, d in pairs]
    wins = {k: results.get(k, {}).get("metrics", {}).get("id_src_wins") for k in pair_keys}
    passed = all(w is not None and w >= BAR for w in wins.values()) and len(pairs) == len(PAIRS) and not quick
    base_key, scratch_key = f"{first[0]}->{first[1]}", f"{first[0]}->{first[1]} from scratch"
    scratch = results.get(scratch_key, {}).get("train", {}).get("curve", [])
    from_base = results.get(base_key, {}).get("train", {}).get("curve", [])
    level = scratch[-1]["eval_ssim"] if scratch else None
    base_summary = {
        "target_ssim": level, "base": results.get(base_key, {}).get("base"),
        "scratch_minutes_to_target": _time_to(scratch, level) if level else None,
        "from_base_minutes_to_target": _time_to(from_base, level) if level else None,
        "ssim_at": {str(t): {"scratch": _ssim_at(scratch, t), "from_base": _ssim_at(from_base, t)}
                    for t in (1, 2, 5, 10, 15, 20, 30) if t <= minutes},
    }
    curves = {scratch_key: scratch, f"{base_key} from the shipped base": from_base}
    curves.update({f"{k} from the shipped base": results.get(k, {}).get("train", {}).get("curve", [])
                   for k in pair_keys[1:]})
    plot = BENCH / "results" / "quality-ssim.png"
    _plot(curves, plot)
    b = base_summary
    table = _table(results)
    table += ["", f"Training budget {minutes:g} min per run, cpu preset as `doppel train --preset cpu` "
                  f"(lr and EMA from the preset), {jobs} run(s) at a time, {threads} thread(s) each; "
                  f"{len(pairs)} of {len(PAIRS)} pairs run. Identity embedded on every compared frame.", "",
              "Held-out SSIM (every minute; curves in `bench/results/quality-ssim.png`):", "",
              "| minutes | " + " | ".join(b["ssim_at"]) + " |", "|---|" + "---|" * len(b["ssim_at"]),
              "| from scratch | " + " | ".join(_f(v["scratch"]) for v in b["ssim_at"].values()) + " |",
              "| from base | " + " | ".join(_f(v["from_base"]) for v in b["ssim_at"].values()) + " |", "",
              f"From scratch ends at SSIM {_f(level)}; the run from the shipped base ({b['base']}) reaches it at "
              f"{b['from_base_minutes_to_target']} min."]
    return {
        "target": f"id_sim_src > id_sim_dst on >= {BAR:.0%} of frames, every pair, cpu preset {minutes:g} min",
        "passed": bool(passed),
        "bars": {k: bars(results.get(k, {})) for k in pair_keys},
        "headline": "src wins " + ", ".join(f"{k} {_f(w, '.0%')}" for k, w in wins.items())
                    + "; sharpness " + ", ".join(
                        f"{k} {_f(results.get(k, {}).get('metrics', {}).get('sharpness_ratio'), '.2f')}"
                        for k in pair_keys)
                    + f"; from base reaches scratch's {minutes:g}-min SSIM {_f(level)} in "
                      f"{b['from_base_minutes_to_target']} min",
        "minutes": minutes, "jobs": jobs, "threads": threads, "runs": results, "base": base_summary,
        "plot": str(plot.relative_to(BENCH.parent)), "table": "\n".join(table),
    }


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--child":
        _limit_threads(int(os.environ.get("DOPPEL_BENCH_THREADS", "0")) or (os.cpu_count() or 1))
        kind, rest = sys.argv[2], sys.argv[3:]
        if kind != "pair":
            raise SystemExit(f"bench_quality: unknown child kind {kind!r}")
        src, dst, mins, start, work = rest
        out = child_pair(src, dst, float(mins), Path(work), start)
        sys.stdout.write(json.dumps(out, default=float) + "\n")
    else:
        print(json.dumps(run("--quick" in sys.argv), indent=2, default=float))
