"""The issue's bars against runs: one line per run and bar, PASS/FAIL, and the DFL anchor's figure.

    python research/bars.py TAG [TAG ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
# (label, getter, test, DFL anchor figure (30 min, hidden pair, its own sharpness/warp definitions))
BARS = [
    ("sharpness ratio >= 0.8", lambda d: d["swap"]["sharpness_ratio"], lambda v: v >= 0.8, "0.40"),
    ("self-swap SSIM >= 0.85", lambda d: d["selfswap"]["ssim"], lambda v: v >= 0.85, "--"),
    ("self-swap sharpness in [0.8, 1.25]", lambda d: d["selfswap"]["sharpness_ratio"], lambda v: 0.8 <= v <= 1.25,
     "--"),
    ("self-swap PSNR (dB)", lambda d: d["selfswap"]["psnr"], None, "--"),
    ("self-swap GMSD", lambda d: d["selfswap"]["gmsd"], None, "--"),
    ("mouth corr >= 0.85", lambda d: d["eval"]["mouth_corr"], lambda v: v >= 0.85, "0.36"),
    ("eye corr >= 0.7", lambda d: d["eval"]["eye_corr"], lambda v: v >= 0.7, "0.37"),
    ("expression NME <= 0.045", lambda d: d["eval"]["expression_nme"], lambda v: v <= 0.045, "0.072"),
    ("pose error <= 8 deg", lambda d: d["eval"]["pose_error_deg"], lambda v: v <= 8, "8.7"),
    ("source nearest identity 100 %", lambda d: d["eval"]["id_retrieval"], lambda v: v >= 1.0, "100 %"),
    ("source wins >= 95 %", lambda d: d["eval"]["id_src_wins"], lambda v: v >= 0.95, "100 %"),
    ("warp error ratio <= 1.15", lambda d: d["swap"]["warp_error_ratio"], lambda v: v <= 1.15, "1.63"),
    ("warp error p95 <= 1.3", lambda d: d["swap"]["warp_error_p95"], lambda v: v <= 1.3, "2.09"),
    ("warp error, detail-normalised", lambda d: d["swap"]["warp_error_normalised"], None, "--"),
    ("gaze corr", lambda d: d["swap"]["gaze_corr"], None, "--"),
]


def check(run: dict) -> dict[str, bool]:
    """Each bar with a test: whether ``run`` (a result file's content) passes it (a missing figure fails)."""
    out = {}
    for label, get, test, _ in BARS:
        if test is None:
            continue
        try:
            v = get(run)
        except (KeyError, TypeError):
            v = None
        out[label] = v is not None and bool(test(v))
    return out


def main() -> None:
    runs = [json.loads((RESULTS / f"{t}.json").read_text()) for t in sys.argv[1:]]
    print("| bar | " + " | ".join(r["tag"] for r in runs) + " | DFL anchor |")
    print("|---|" + "---|" * (len(runs) + 1))
    for label, get, test, dfl in BARS:
        cells = []
        for r in runs:
            try:
                v = get(r)
            except (KeyError, TypeError):
                v = None
            if v is None:
                cells.append("--")
                continue
            mark = "" if test is None else (" pass" if test(v) else " FAIL")
            cells.append(f"{v:.3g}{mark}")
        print(f"| {label} | " + " | ".join(cells) + f" | {dfl} |")


if __name__ == "__main__":
    main()
