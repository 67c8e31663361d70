"""Where the segmenter's matte still paints over an occluder: the segment benchmark's d18 (or s18) clip,
merged with ``occlusion=segment`` by the clean-clip oracle, leak per occluder kind, and a sheet of the
worst frames (occluder outline green, swap matte > 0.5 red, what the swap paints over the occluder magenta).

    python research/leak_lab.py [d18|s18] [VARIANT]    # writes research/results/leak-CLIP-VARIANT.json/.png

Variants (``VARIANTS``) change one thing in the merge's occlusion handling.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

import bench_segment as B  # noqa: E402
from doppel.merge import composite as C  # noqa: E402

S = importlib.import_module("segment_scenes")  # beside bench_segment (ruff sorts a bare import of it differently
# depending on the checkout's folders)
OracleSwapper, core_region, frame_leaks = S.OracleSwapper, S.core_region, S.frame_leaks
frame_transforms, occlude_clip = S.frame_transforms, S.occlude_clip

VARIANTS: dict[str, dict[str, Any]] = {
    "shipped": {},
    "sure40": {"sure_not": 0.4},
    "nosmooth": {"smoothing": 0.0},
    "margin0": {"occluder_margin": 0},  # before 2026-12-01
    "margin2": {"occluder_margin": 2},
    "margin4": {"occluder_margin": 4},
}


def _apply(kw: dict[str, Any]) -> dict[str, Any]:
    """Patch the merge for a variant; returns merge settings to use."""
    settings: dict[str, Any] = {"occlusion": "segment"}
    if "sure_not" in kw:
        C.SURE_NOT = kw["sure_not"]
    if "occluder_margin" in kw:
        settings["occluder_margin"] = kw["occluder_margin"]
    if "smoothing" in kw:
        settings["mask_smoothing"] = kw["smoothing"]
    return settings


def main() -> None:
    from doppel.merge.settings import MergeSettings
    from doppel.workflow.extract import destination_faces
    from doppel.workflow.merge import MergeRequest, merge
    from doppel.workflow.replay import replay

    clip = {"d18": B.HELD_OUT[0], "s18": B.HELD_OUT[1]}[sys.argv[1] if len(sys.argv) > 1 else "d18"]
    variant = sys.argv[2] if len(sys.argv) > 2 else "shipped"
    settings = _apply(VARIANTS[variant])
    B.WORKDIR.mkdir(parents=True, exist_ok=True)
    ws = B._workspace((clip,))
    name = B._ident(clip)
    marks = {f.frame_index: f.landmarks_smooth for f in ws.faces.of(name)}
    occluded = B.WORKDIR / f"{name}-occluded.mp4"
    scene = occlude_clip(B.MEDIA / clip, marks, occluded)
    dest = destination_faces(ws, occluded, f"occ-{name}", size=256, face_type="full")
    oracle = OracleSwapper(occluded, B.MEDIA / clip, frame_transforms(dest.faces, B.RES, "full"), B.RES)
    B._register(ws, f"oracle-{name}", f"occ-{name}")
    report = merge(ws, MergeRequest(input=occluded, output=B.WORKDIR / f"{name}-{variant}.mp4",
                                    model=f"oracle-{name}", settings=MergeSettings.validated(settings)),
                   swapper=oracle)
    frames = {fr.index: fr for fr in replay(ws, report.render_id, swapper=oracle)}
    leaks = frame_leaks(frames.values(), scene, marks)
    by_kind: dict[str, list[float]] = {}
    for i, v in leaks.items():
        by_kind.setdefault(scene.kinds[i], []).append(v)
    out = {"clip": name, "variant": variant, "all": B._summary(leaks),
           "kinds": {k: {"frames": len(v), "mean": round(float(np.mean(v)), 4),
                         "p95": round(float(np.percentile(v, 95)), 4), "max": round(float(np.max(v)), 4)}
                     for k, v in by_kind.items()}}
    # the glitch ranking against the frames that leak (as the segment benchmark measures it), and every frame's
    # signals for offline re-ranking
    from doppel.review.analyse import analyse
    from doppel.review.glitches import load_scores

    analyse(ws, report.render_id, swapper=oracle, identity_budget=40)
    scores = load_scores(ws, report.render_id)
    out["glitches"] = B._glitches(ws, report.render_id, oracle, leaks, marks, scene)
    out["frames"] = [{"frame": g.frame, "score": g.score, "leak_true": leaks.get(g.frame),
                      "kind": scene.kinds.get(g.frame), "reasons": {r["reason"]: [r["z"], r["value"]]
                                                                    for r in g.reasons}} for g in scores]
    dest_path = ROOT / "research" / "results" / f"leak-{name}-{variant}"
    dest_path.with_suffix(".json").write_text(json.dumps(out, indent=1))
    print(json.dumps({k: v for k, v in out.items() if k != "frames"}, indent=1))
    # the sheet: the six worst frames, cropped around the face
    tiles = []
    for i in sorted(leaks, key=leaks.get, reverse=True)[:6]:  # type: ignore[arg-type]
        fr = frames[i]
        img = fr.original.copy()
        cover = scene.covered(i)
        assert cover is not None
        on = cover & core_region(marks[i], cover.shape)
        painted = (fr.matte > 127) if fr.matte is not None else np.zeros_like(on)
        img[painted & on] = (255, 0, 255)
        for mask, colour in ((cover, (0, 255, 0)), (painted, (255, 0, 0))):
            contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(img, contours, -1, colour, 1)
        x0, y0 = marks[i].min(0).astype(int) - 40
        x1, y1 = marks[i].max(0).astype(int) + 40
        tile = img[max(0, y0):y1, max(0, x0):x1]
        tile = cv2.resize(tile, (320, round(320 * tile.shape[0] / tile.shape[1])))[:360]
        tile = cv2.copyMakeBorder(tile, 0, 360 - tile.shape[0], 0, 0, cv2.BORDER_CONSTANT)
        cv2.putText(tile, f"#{i} {scene.kinds[i]} {leaks[i]:.0%}", (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55,
                    (255, 255, 255), 1)
        tiles.append(tile)
    sheet = np.concatenate([np.concatenate(tiles[:3], axis=1), np.concatenate(tiles[3:6], axis=1)], axis=0)
    cv2.imwrite(str(dest_path.with_suffix(".png")), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))


if __name__ == "__main__":
    main()
