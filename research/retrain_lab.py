"""What an artist's retrain does to the occluders they did *not* label: the segment benchmark's d18 (or s18)
clip, merged with ``occlusion=segment`` by the clean-clip oracle, leak per occluder kind with the base
segmenter, then after ``doppel mask train`` on exclude polygons traced on 10 frames of one occluder (the
``fist`` by default, as the benchmark's retrain picked it), leak per kind again.

    python research/retrain_lab.py [d18|s18] [VARIANT] [--kind fist] [--minutes 3]
    # writes research/results/retrain-CLIP-VARIANT.json

Variants (``VARIANTS``) change the fine-tuning's settings (``fine_tune_config``'s fields).
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

import bench_segment as B  # noqa: E402

S = importlib.import_module("segment_scenes")

VARIANTS: dict[str, dict[str, Any]] = {  # fine_tune_config fields; "base_labels": MaskTrainRequest's
    "shipped": {},
    "hull": {"base_labels": False},  # the faces' landmark-hull labels as they are (doppel before 2026-12-01)
    "lr2e-4": {"lr": 2e-4, "base_labels": False},
    "share25": {"labelled_share": 0.25, "base_labels": False},
}
# Measured with this script at commit ee1d499 (their code is gone since): wise30/wise50 (the fine-tuned
# weights blended back toward the base, WiSE-FT), doubt (the hull's doubtful pixels unknown instead of the
# base's labels), distill/distill70/distill90 (the base's labels below 0.5/0.7/0.9 certainty; 0.9 shipped).


def _by_kind(leaks: dict[int, float], scene: Any, frames: set[int] | None = None) -> dict[str, Any]:
    groups: dict[str, list[float]] = {}
    for i, v in leaks.items():
        if frames is None or i in frames:
            groups.setdefault(scene.kinds[i], []).append(v)
    return {k: {"frames": len(v), "mean": round(float(np.mean(v)), 4), "p95": round(float(np.percentile(v, 95)), 4),
                "max": round(float(np.max(v)), 4)} for k, v in groups.items()}


def main() -> None:
    from doppel.merge.settings import MergeSettings
    from doppel.workflow.extract import destination_faces
    from doppel.workflow.merge import MergeRequest, add_override, merge
    from doppel.workflow.segment import MaskTrainRequest, fine_tune_config, segmenter_dir, train_mask

    ap = argparse.ArgumentParser()
    ap.add_argument("clip", nargs="?", default="d18", choices=("d18", "s18"))
    ap.add_argument("variant", nargs="?", default="shipped", choices=sorted(VARIANTS))
    ap.add_argument("--kind", default="fist")
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--steps", type=int, help="a step budget instead of minutes (the benchmark's 3 minutes were "
                    "387 steps), so runs on a busy machine compare")
    args = ap.parse_args()
    clip = {"d18": B.HELD_OUT[0], "s18": B.HELD_OUT[1]}[args.clip]
    B.WORKDIR.mkdir(parents=True, exist_ok=True)
    ws = B._workspace((clip,))
    shutil.rmtree(segmenter_dir(ws), ignore_errors=True)  # start from the base
    name = B._ident(clip)
    marks = {f.frame_index: f.landmarks_smooth for f in ws.faces.of(name)}
    occluded = B.WORKDIR / f"{name}-occluded.mp4"
    scene = S.occlude_clip(B.MEDIA / clip, marks, occluded)
    dest = destination_faces(ws, occluded, f"occ-{name}", size=256, face_type="full")
    oracle = S.OracleSwapper(occluded, B.MEDIA / clip, S.frame_transforms(dest.faces, B.RES, "full"), B.RES)
    B._register(ws, f"oracle-{name}", f"occ-{name}")
    report = merge(ws, MergeRequest(input=occluded, output=B.WORKDIR / f"{name}-retrain-lab.mp4",
                                    model=f"oracle-{name}", settings=MergeSettings(occlusion="segment")),
                   swapper=oracle)
    before = B._leaks(ws, report.render_id, oracle, scene, marks)
    span = sorted(i for i, k in scene.kinds.items() if k == args.kind and i in dest.faces)
    labelled = [span[int(j)] for j in np.linspace(0, len(span) - 1, min(10, len(span))).round()]
    ids = [add_override(ws, report.render_id, f, f, {"mask_polygons": B._polygons(scene.occluder[f], dest.faces[f])})
           for f in labelled]
    budget = {"minutes": None, "steps": args.steps} if args.steps else {"minutes": args.minutes}
    changes = dict(VARIANTS[args.variant])
    base_labels = bool(changes.pop("base_labels", True))
    config = fine_tune_config(threads=2, **budget, **changes)
    started = time.perf_counter()
    trained = train_mask(ws, MaskTrainRequest(identities=(f"occ-{name}",), config=config,
                                                              base_labels=base_labels))
    seconds = time.perf_counter() - started
    for oid in ids:
        ws.renders.remove_override(oid)
    after = B._leaks(ws, report.render_id, oracle, scene, marks)
    unlabelled = set(before) - set(labelled)
    out = {"clip": name, "variant": args.variant, "config": config.model_dump(), "base_labels": base_labels,
           "labelled_kind": args.kind,
           "labelled_frames": labelled, "train_steps": trained.train["steps"], "seconds": round(seconds, 1),
           "before": {"all": B._summary(before), "kinds": _by_kind(before, scene)},
           "after": {"all": B._summary(after), "unlabelled": B._summary(after, unlabelled),
                     "kinds": _by_kind(after, scene, unlabelled)}}
    shutil.rmtree(segmenter_dir(ws), ignore_errors=True)
    path = ROOT / "research" / "results" / f"retrain-{name}-{args.variant}.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
