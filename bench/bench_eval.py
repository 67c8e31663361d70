"""Eval speed: ``doppel eval`` on a real clip against a re-coloured copy of itself.

The clip is ``lp_d18_man_neutral_studio.mp4`` (480x480, 216 frames); the "merged" clip is the
same frames with a colour offset (so tracking, seams and flicker have real work and the answer is
known: landmarks barely move, identity is kept). The workspace holds two identities (d18 and
d19) so identity retrieval has a choice. Extraction is not timed; each repeat runs
:func:`doppel.eval.pipeline.evaluate` in a fresh child process with models loaded first (load
time reported apart).

Target: >= 10 frames/s end to end with the default embedding stride (at most 60 frames
embedded, twice), i.e. evaluating costs less than merging the same clip. Also reported: seconds
per stage, and the metrics themselves as a sanity check (expression NME < 0.03, identity kept).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"
CLIP = "lp_d18_man_neutral_studio.mp4"
OTHER = "lp_d19_man_glasses_studio.mp4"
TARGET_FPS = 10.0


def _prepare(tmp: Path) -> dict[str, str]:
    import numpy as np

    from doppel.io.video import probe, read_frames
    from doppel.io.writer import VideoWriter
    from doppel.workflow.extract import extract as extract_clip
    from doppel.workflow.workspace import create_workspace

    info = probe(MEDIA / CLIP)
    tinted = tmp / "tinted.mp4"
    with VideoWriter(tinted, width=info.width, height=info.height, fps=info.fps, crf=16, preset="veryfast") as w:
        for f in read_frames(MEDIA / CLIP):
            w.write(np.clip(f.image.astype(np.int16) + np.array([14, 4, -10]), 0, 255).astype(np.uint8))
    with create_workspace(tmp / "ws") as ws:
        extract_clip(ws, "d18", MEDIA / CLIP)
        extract_clip(ws, "d19", MEDIA / OTHER)
    return {"ws": str(tmp / "ws"), "original": str(MEDIA / CLIP), "merged": str(tinted)}


def _child(args: dict[str, str]) -> dict[str, Any]:
    from doppel.eval.faces import DETECTOR, LANDMARKER
    from doppel.eval.pipeline import EMBEDDER, EvalRequest
    from doppel.extract import backends
    from doppel.store import Workspace
    from doppel.workflow.evaluate import evaluate

    t = time.perf_counter()
    backends.detector(DETECTOR), backends.landmarker(LANDMARKER), backends.embedder(EMBEDDER)
    load = time.perf_counter() - t
    with Workspace.open(args["ws"]) as ws:
        report = evaluate(ws, EvalRequest(original=Path(args["original"]), merged=Path(args["merged"]), src="d18",
                                          dst="d19", sheet=Path(args["ws"]) / "sheet.png"))
    data = report.to_dict()
    data.pop("per_frame")
    return {"report": data, "load_seconds": load}


def _spawn(args: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(args)], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"eval child failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(quick: bool) -> dict[str, Any]:
    if not (MEDIA / CLIP).exists():
        return {"target": "needs ../shared/media", "passed": False, "headline": "skipped: no shared media"}
    repeats = 1 if quick else 3
    with tempfile.TemporaryDirectory(prefix="doppel-bench-eval-") as tmp:
        args = _prepare(Path(tmp))
        runs = [_spawn(args) for _ in range(repeats)]
    reports = [r["report"] for r in runs]
    fps = [r["frames"] / r["seconds"] for r in reports]
    med = statistics.median(fps)
    first = reports[0]
    embedded = first["frames_embedded"]
    stages = {k: round(statistics.median(r["stages"][k] for r in reports), 2) for k in first["stages"]}
    sane = (first["expression_nme"] is not None and first["expression_nme"] < 0.03
            and first["id_retrieval"] == 1.0)
    table = ["| run | frames | embedded | seconds | frames/s | track s | pixels s |", "|---|---|---|---|---|---|---|"]
    for i, r in enumerate(reports):
        table.append(f"| {i + 1} | {r['frames']} | {r['frames_embedded']} | {r['seconds']:.1f} | "
                     f"{r['frames'] / r['seconds']:.1f} | {r['stages']['track']:.1f} | {r['stages']['pixels']:.1f} |")
    table += ["", f"Metrics of the re-coloured copy (known answer: same landmarks, same person): expression NME "
                  f"{first['expression_nme']:.4f}, pose error {first['pose_error_deg']:.2f} deg, flicker ratio "
                  f"{first['flicker_ratio']:.3f}, seam {first['seam_score']:.3f}, "
                  f"id_sim_src {first['id_sim_src']:.3f}, "
                  f"id_retrieval {first['id_retrieval']:.2f}. Model load {runs[0]['load_seconds']:.1f} s (not timed)."]
    return {
        "target": f">= {TARGET_FPS:.0f} frames/s end to end on a 480x480 clip (<= 60 frames embedded)",
        "passed": bool(med >= TARGET_FPS and sane),
        "headline": f"{med:.1f} frames/s median of {repeats}; {embedded} frames embedded; stages {stages}",
        "fps_runs": [round(f, 2) for f in fps], "fps_median": round(med, 2), "stages_median_s": stages,
        "metrics": {k: first[k] for k in ("expression_nme", "pose_error_deg", "flicker_ratio", "seam_score",
                                          "id_sim_src", "id_sim_dst", "id_retrieval", "jitter_px",
                                          "jitter_px_input")},
        "load_during": [round(x, 2) for x in os.getloadavg()], "table": "\n".join(table),
    }


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--child":
        sys.stdout.write(json.dumps(_child(json.loads(sys.argv[2])), default=float) + "\n")
    else:
        print(json.dumps(run("--quick" in sys.argv), indent=2, default=float))
