"""Write a quality-against-budget curve from quality_lab runs into ``bench/results/``.

    python research/curve.py NAME TAG [TAG ...]

Each TAG is a ``research/results/<tag>.json`` of one pair (runs of the same recipe at different
``--cpu-minutes``). Writes ``bench/results/quality-curve-NAME.json`` (every row with its own commit,
the date its run finished and the machine) and ``.md`` (the table, and issue 12's bars per row).
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import socket
import sys
from pathlib import Path
from typing import Any

import bars
import table

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results"


def _row(tag: str) -> dict[str, Any]:
    path = table.RESULTS / f"{tag}.json"
    d = json.loads(path.read_text())
    finished = d.get("finished_at") or dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC).isoformat(
        timespec="seconds")
    t, e, s, ss = d["train"], d["eval"], d["swap"], d["selfswap"]
    extra = t.get("extra") or {}
    return {"tag": tag, "pair": d["pair"], "recipe": d["recipe"], "cpu_minutes": d.get("cpu_minutes"),
            "steps": t["steps"], "detail_steps": extra.get("detail_steps"), "commit": d.get("code"),
            "finished_at": finished, "load_before": d.get("load_before"),
            "sharpness_ratio": s["sharpness_ratio"], "warp_error_ratio": s["warp_error_ratio"],
            "warp_error_p95": s["warp_error_p95"], "gaze_corr": s.get("gaze_corr"),
            "mouth_corr": e["mouth_corr"], "eye_corr": e["eye_corr"], "expression_nme": e["expression_nme"],
            "pose_error_deg": e["pose_error_deg"], "id_retrieval": e["id_retrieval"], "id_src_wins": e["id_src_wins"],
            "self_ssim": ss["ssim"], "self_psnr": ss["psnr"], "self_gmsd": ss["gmsd"],
            "self_sharpness": ss["sharpness_ratio"], "bars": bars.check(d)}


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    name, tags = sys.argv[1], sys.argv[2:]
    rows = sorted((_row(t) for t in tags), key=lambda r: (r["cpu_minutes"] or 0, r["tag"]))
    doc = {"name": name, "written": dt.date.today().isoformat(),
           "machine": {"host": socket.gethostname(), "platform": platform.platform(),
                       "python": platform.python_version()},
           "how": "bench/quality_lab.py PAIR RECIPE --cpu-minutes N (one thread, bf16 where the CPU has it)",
           "rows": rows}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"quality-curve-{name}.json").write_text(json.dumps(doc, indent=1) + "\n")
    lines = [f"# Quality against training budget: {name}", "",
             f"Machine: {doc['machine']['host']}, {doc['machine']['platform']}. Each row is one "
             "`bench/quality_lab.py` run (one thread, CPU-time budget); its commit and finish time are its own.",
             "", "| CPU-min | run | steps | sharp | warp (p95) | mouth | eye | NME | pose | nearest / wins | "
             "self SSIM | PSNR | GMSD | self sharp | bars passed | commit | finished |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        passed = sum(bool(v) for v in r["bars"].values())
        steps = f"{r['steps']}" + (f" + {r['detail_steps']} detail" if r["detail_steps"] else "")
        lines.append(
            f"| {r['cpu_minutes']:g} | {r['tag']} | {steps} | {r['sharpness_ratio']:.2f} | "
            f"{r['warp_error_ratio']:.2f} ({r['warp_error_p95']:.2f}) | {r['mouth_corr']:.2f} | {r['eye_corr']:.2f} | "
            f"{r['expression_nme']:.3f} | {r['pose_error_deg']:.1f} | "
            f"{r['id_retrieval']:.0%} / {r['id_src_wins']:.0%} | "
            f"{r['self_ssim']:.3f} | {r['self_psnr']:.1f} | {r['self_gmsd']:.3f} | {r['self_sharpness']:.2f} | "
            f"{passed} of {len(r['bars'])} | {r['commit']} | {r['finished_at']} |")
    (OUT / f"quality-curve-{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
