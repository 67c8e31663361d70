"""Print the ablation table (markdown) from research/results/*.json: one row per run.

    python research/table.py [glob ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
COLS = ["run", "pair", "budget", "steps", "img/s", "img/cpu-s", "sharp (p10-p90)", "warp (p95) norm", "mouth",
        "eye", "NME", "pose", "nearest / wins / dlib", "gaze r", "self SSIM", "PSNR", "GMSD", "self sharp",
        "self SSIM/GMSD/sharp @sharpen1"]


def f(x: object, fmt: str = ".2f") -> str:
    return format(x, fmt) if isinstance(x, (int, float)) else "--"


def row(d: dict) -> str:
    t, e, s, ss, sh = d["train"], d["eval"], d["swap"], d["selfswap"], d.get("selfswap_sharpen1") or {}
    budget = (f"{d['cpu_minutes']:g} cpu-min" if d.get("cpu_minutes") else f"{d['minutes']:g} min" if d.get("minutes")
              else f"{d['steps_budget']} steps" if d.get("steps_budget") else "--")
    if t.get("reused_from"):
        budget += f" (model of {t['reused_from']})"
    extra = t.get("extra") or {}
    steps = f"{t['steps']}" + (f" + {extra['detail_steps']} detail" if extra.get("detail_steps") else "")
    cells = [d["tag"], d["pair"], budget, steps, f(t.get("images_per_s"), ".1f"), f(t.get("images_per_cpu_s"), ".1f"),
             f"{f(s['sharpness_ratio'])} ({f(s['sharpness_p10'])}-{f(s['sharpness_p90'])})",
             f"{f(s['warp_error_ratio'])} ({f(s['warp_error_p95'])}) {f(s.get('warp_error_normalised'))}",
             f(e["mouth_corr"]), f(e["eye_corr"]), f(e["expression_nme"], ".3f"), f(e["pose_error_deg"], ".1f"),
             f"{f(e['id_retrieval'], '.0%')} / {f(e['id_src_wins'], '.0%')} / {f(e['id_match_src'], '.0%')}",
             f(s.get("gaze_corr")), f(ss["ssim"], ".3f"), f(ss["psnr"], ".1f"), f(ss["gmsd"], ".3f"),
             f(ss["sharpness_ratio"]),
             f"{f(sh.get('ssim'), '.3f')} / {f(sh.get('gmsd'), '.3f')} / {f(sh.get('sharpness_ratio'))}"]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    pats = sys.argv[1:] or ["*.json"]
    files = sorted({p for pat in pats for p in RESULTS.glob(pat)})
    print("| " + " | ".join(COLS) + " |")
    print("|" + "---|" * len(COLS))
    for p in files:
        print(row(json.loads(p.read_text())))


if __name__ == "__main__":
    main()
