"""Segmenter benchmark (issue 13): does what covers the face stay on top of the swap?

- **crops**: face-mask IoU of the shipped segmenter on faces of people it never saw (d18, s18) and,
  for reference, of people it was trained on (d0, d3, d19), under synthetic occluders of the
  *held-out* families (``doppel.segment.synth.HELD_OUT_KINDS``), against the old heuristic
  (``merge/occlusion.py``, given a perfect swap to compare with: its best case) and the bare hull.
  IoU is measured inside merge's face hull (where the matte lives) and, for the segmenter, over
  its whole definition of the visible face too. "occluded" = occluders cover >= 1% of the face.
- **clips**: each held-out clip re-encoded with held-out occluders drawn on it (a rimmed skin blob
  sweeping over the mouth, aviator sunglasses moving with the head, a fist and a phone), merged
  with an oracle stand-in for a model trained on the clean clip (it never reproduces an occluder),
  once with ``occlusion=exclude`` (the heuristic) and once with ``occlusion=segment``. The bar's IoU
  is measured here on every frame (all / occluded), the segmenter on the occluded frame against the
  clean frame's label with the drawn occluders cut out, inside merge's face hull. Leak = share
  of a frame's occluder pixels inside the face that the matte covers; mean and p95 over occluded
  frames; the sunglasses frames on their own; occluded frames left unswapped (a pop). ``doppel glitches``
  then ranks the render:
  precision among the top min(20, n) of the n frames leaking > 2%, and plate blinks flagged.
  On the 720p clip merge speed is also measured with the ``cpu`` preset's network (untrained
  weights: speed only) with and without the segmenter.
- **retrain**: 10 frames of the worst occluder get exclude polygons (from the drawn masks, as an
  artist would draw them in review), ``doppel mask train`` runs for 3 minutes on 2 threads, the
  polygons are removed again, and leak is measured on those frames, their neighbours, and the frames of
  the occluders nobody labelled (which a retrain must not let through).
- **d12**: the hand and pen of ``lp_d12`` labelled by eye (``tests/fixtures/d12_occluders.json``,
  24 frames): IoU on the 14 frames not used for retraining, before and after retraining on 10,
  against the landmark label minus the hand and pen (his real glasses' band is left out: unlabelled),
  and the share of hand/pen pixels inside the segmenter's crop that it calls face.
- **speed**: segmenter faces/s on 2 threads (ONNX Runtime; PyTorch for reference).

Run: ``python bench/run.py segment`` (about 25 minutes) or ``--quick`` (d18 only, shorter retrain).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MEDIA = ROOT.parent / "shared" / "media"
FIXTURE = ROOT / "tests" / "fixtures" / "d12_occluders.json"
WORKDIR = Path(os.environ.get("DOPPEL_BENCH_SEGMENT_DIR", Path(tempfile.gettempdir()) / "doppel-bench-segment"))
HELD_OUT = ("lp_d18_man_neutral_studio.mp4", "lp_s18_woman_redhair_720p.mp4")
SEEN = ("lp_d0_asian_man_greenscreen.mp4", "lp_d3_woman_expressions.mp4", "lp_d19_man_glasses_studio.mp4")
D12 = "lp_d12_man_talking_gesturing.mp4"
RES = 128  # the oracle's crop size
BARS = {"iou_all": 0.92, "iou_occluded": 0.85, "leak_mean": 0.02, "leak_p95": 0.05, "faces_per_s": 60.0,
        "merge_fps": 12.0, "retrain_s": 300.0, "precision": 0.9,
        "retrain_others": 0.005}  # how much a retrain may raise the mean leak of the occluders it was not shown


def _say(text: str, partial: dict[str, Any] | None = None) -> None:
    """Progress on stderr; ``partial`` results are kept in WORKDIR/partial.json in case a later part fails."""
    import sys

    print(f"   segment: {text}", file=sys.stderr, flush=True)
    if partial is not None:
        (WORKDIR / "partial.json").write_text(json.dumps(partial, indent=1, default=str))


def _ident(clip: str) -> str:
    return clip.split("_")[1]


def _workspace(clips: tuple[str, ...]) -> Any:
    from doppel.extract.config import content_hash
    from doppel.provenance.consent import add_consent
    from doppel.store import Workspace
    from doppel.workflow.extract import extract
    from doppel.workflow.workspace import create_workspace

    root = WORKDIR / "ws"
    if not root.exists():
        with create_workspace(root) as ws:
            add_consent(ws, "src", "doppel benchmark", "benchmark only", "public-domain-demo")
    ws = Workspace.open(root)
    for name in clips:
        clip = ws.clips.by_hash(content_hash(MEDIA / name))
        if clip is None or not ws.faces.extracted(clip.id, _ident(name)):
            extract(ws, _ident(name), MEDIA / name)
    return ws


def _register(ws: Any, name: str, dst: str) -> None:
    folder = ws.models_dir() / name
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text("{}")
    ws.identities.ensure("src")
    ws.models.register(name, folder_rel=f"models/{name}", arch="oracle", preset=None, resolution=RES,
                       face_type="full", src="src", dst=dst, base=None, step=0)


# -- crops ------------------------------------------------------------------------------------------
def crops(ws: Any, seg: Any, quick: bool, held: tuple[str, ...]) -> dict[str, Any]:
    """IoU per identity for segmenter, heuristic and hull, on the same held-out-occluder views."""
    from doppel.merge import occlusion as occ
    from doppel.segment import synth
    from doppel.segment.labels import lifted_hull
    from doppel.segment.metrics import iou
    from doppel.segment.paint import paint
    from doppel.workflow.segment import face_samples

    out: dict[str, Any] = {}
    for clip in (*held, *SEEN):
        name = _ident(clip)
        faces = ws.faces.of(name)
        samples = face_samples(faces[:: 12 if quick else 4], seg.config)
        rng = np.random.default_rng(7)
        rows: dict[str, list[tuple[float, bool]]] = {"segmenter": [], "segmenter_full": [], "heuristic": [], "hull": []}
        for s in samples:
            for _ in range(2):
                scene = synth.draw_scene(rng, "held_out", skin=s.skin)
                img = s.image.astype(np.float32) / 255.0
                p = paint(img, s.landmarks, scene)
                cover = np.clip(p.occluder + p.glasses, 0, 1)
                gt = s.face * (1 - cover)
                covered = float((s.face * cover).sum()) / max(float(s.face.sum()), 1.0)
                occluded = covered >= 0.01
                plate = np.clip(p.image * 255 + 0.5, 0, 255).astype(np.uint8)
                prob = seg.predict(plate[None]).face[0]
                hull = lifted_hull(s.landmarks, seg.size, 0.12)
                known = s.face_weight > 0
                found = occ.estimate(img, p.image.astype(np.float32), hull, None, s.landmarks, 0.9)
                heur = hull * (1 - found.map)
                inside = known & (hull > 0.5)
                rows["segmenter"].append((iou(prob, gt, inside), occluded))
                rows["segmenter_full"].append((iou(prob, gt, known), occluded))
                rows["heuristic"].append((iou(heur, gt, inside), occluded))
                rows["hull"].append((iou(hull, gt, inside), occluded))
        out[name] = {"held_out_person": clip in HELD_OUT, "views": len(rows["hull"]),
                     "occluded_views": sum(o for _, o in rows["hull"])}
        for method, vals in rows.items():
            out[name][method] = {"iou_all": round(float(np.mean([v for v, _ in vals])), 4),
                                 "iou_occluded": round(float(np.mean([v for v, o in vals if o] or [np.nan])), 4)}
    return out


# -- clips ------------------------------------------------------------------------------------------
def _leaks(ws: Any, render_id: int, swapper: Any, scene: Any, marks: dict[int, np.ndarray],
           passed: list[int] | None = None) -> dict[int, float]:
    """Leak per occluded frame; ``passed`` collects the occluded frames merge passed through unswapped (the
    performer's own face shows there: a pop)."""
    from doppel.workflow.replay import replay
    from segment_scenes import frame_leaks

    def frames() -> Any:
        for fr in replay(ws, render_id, swapper=swapper):
            if passed is not None and fr.index in scene.kinds and fr.status != "swapped":
                passed.append(fr.index)
            yield fr

    return frame_leaks(frames(), scene, marks)


def _summary(leaks: dict[int, float], frames: set[int] | None = None) -> dict[str, Any]:
    vals = [v for i, v in leaks.items() if frames is None or i in frames]
    if not vals:
        return {"frames": 0}
    return {"frames": len(vals), "mean": round(float(np.mean(vals)), 4),
            "p95": round(float(np.percentile(vals, 95)), 4), "max": round(float(np.max(vals)), 4),
            "over_2pct": int(sum(v > 0.02 for v in vals))}


def _glitches(ws: Any, render_id: int, swapper: Any, leaks: dict[int, float], marks: dict[int, np.ndarray],
              scene: Any) -> dict[str, Any]:
    from doppel.ops.face import eye_openness
    from doppel.review.analyse import analyse
    from doppel.review.glitches import load_scores, ranked

    analyse(ws, render_id, swapper=swapper, identity_budget=40)
    scores = load_scores(ws, render_id)
    relevant = {i for i, v in leaks.items() if v > 0.02}
    k = min(20, len(relevant))
    top = [g.frame for g in ranked(scores, max(k, 20))]
    precision = sum(f in relevant for f in top[:k]) / k if k else None
    occluded_top = sum(scene.covered(f) is not None for f in top[:20]) / 20
    ear = {i: float(np.mean(eye_openness(lm))) for i, lm in marks.items()}
    usual = float(np.median(list(ear.values())))
    blinks = [i for i, v in ear.items() if scene.covered(i) is None and v < 0.7 * usual]  # eyes a third shut
    flagged = {g.frame for g in scores if g.flagged}
    return {"leaky_frames": len(relevant), "k": k, "precision_at_k": None if precision is None else round(precision, 3),
            "occluded_share_of_top20": round(occluded_top, 3), "blink_frames": len(blinks),
            "blinks_flagged": sum(b in flagged for b in blinks), "blinks_in_top20": sum(b in top[:20] for b in blinks),
            "top20": top[:20]}


def _real_model_fps(ws: Any, path: Path, dst: str) -> dict[str, Any]:
    """Merge at 720p through the product's model loading with the cpu preset's network (untrained)."""
    import torch

    from doppel.merge.settings import MergeSettings
    from doppel.train import checkpoint
    from doppel.train.config import PRESETS
    from doppel.train.models import build_model
    from doppel.workflow.merge import MergeRequest, merge

    cfg = PRESETS["cpu"].model
    folder = ws.models_dir() / "cpu-untrained"
    if not (folder / checkpoint.WEIGHTS).is_file():
        folder.mkdir(exist_ok=True)
        torch.manual_seed(0)
        checkpoint.write_config(folder, cfg)
        checkpoint.save_weights(folder, build_model(cfg), {"note": "untrained, for the segment benchmark"})
    ws.models.register("cpu-untrained", folder_rel="models/cpu-untrained", arch=cfg.arch, preset="cpu",
                       resolution=cfg.resolution, face_type=cfg.face_type, src="src", dst=dst, base=None, step=0)
    out = {}
    for mode in ("exclude", "segment"):
        shutil.rmtree(ws.renders_dir() / "cache", ignore_errors=True)
        cpu0 = time.process_time()
        report = merge(ws, MergeRequest(input=path, output=WORKDIR / f"fps-{mode}.mp4", model="cpu-untrained",
                                        settings=MergeSettings(occlusion=mode)))
        cpu_ms = 1000 * (time.process_time() - cpu0) / max(report.frames, 1)
        out[mode] = {"fps": round(report.fps, 2), "cpu_ms_per_frame": round(cpu_ms, 1),
                     "fps_bound_2_free_cores": round(2000 / cpu_ms, 1),
                     "segment_ms_per_frame": round(1000 * report.stages.get("segment", 0) / max(report.frames, 1), 2)}
    return out


def frame_iou(seg: Any, clean: Path, occluded: Path, scene: Any, marks: dict[int, np.ndarray]) -> dict[str, Any]:
    """IoU on every frame of the occluded clip (in merge's face hull): the segmenter on the occluded frame
    against the label of the clean frame with the drawn occluders cut out."""
    import cv2

    from doppel.io.video import read_frames
    from doppel.segment.labels import face_label, lifted_hull
    from doppel.segment.metrics import iou

    plates = {f.index: f.image for f in read_frames(occluded)}
    rows = []
    for f in read_frames(clean):
        lm = marks.get(f.index)
        if lm is None or f.index not in plates:
            continue
        crop, m = seg.crop_of(plates[f.index], lm)
        clean_crop, _ = seg.crop_of(f.image, lm)
        lm_crop = lm @ m[:, :2].T + m[:, 2]
        gt = face_label(clean_crop, lm_crop)
        cover = scene.covered(f.index)
        if cover is not None:
            gt = gt * (1 - cv2.warpAffine(cover.astype(np.float32), m, (seg.size, seg.size), flags=cv2.INTER_LINEAR))
        prob = seg.predict(crop[None]).face[0]
        rows.append((iou(prob, gt, lifted_hull(lm_crop, seg.size, 0.12) > 0.5), cover is not None))
    occ = [v for v, o in rows if o]
    return {"frames": len(rows), "occluded_frames": len(occ), "iou_all": round(float(np.mean([v for v, _ in rows])), 4),
            "iou_occluded": round(float(np.mean(occ)), 4) if occ else None,
            "iou_clean": round(float(np.mean([v for v, o in rows if not o])), 4)}


def clip_run(ws: Any, clip: str, quick: bool, real_fps: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    from doppel.merge.bridge import is_bridged
    from doppel.merge.settings import MergeSettings
    from doppel.workflow.extract import destination_faces
    from doppel.workflow.merge import MergeRequest, merge
    from segment_scenes import OracleSwapper, frame_transforms, occlude_clip

    name = _ident(clip)
    clean = MEDIA / clip
    marks = {f.frame_index: f.landmarks_smooth for f in ws.faces.of(name)}
    occluded = WORKDIR / f"{name}-occluded.mp4"
    scene = occlude_clip(clean, marks, occluded)
    dst = f"occ-{name}"
    dest = destination_faces(ws, occluded, dst, size=256, face_type="full")
    oracle = OracleSwapper(occluded, clean, frame_transforms(dest.faces, RES, "full"), RES)
    _register(ws, f"oracle-{name}", dst)
    from doppel.segment.segmenter import load_segmenter

    out: dict[str, Any] = {"frames_with_face": len(dest.faces), "occluded_frames": len(scene.kinds),
                           "faces_lost_in_extraction": len([i for i in scene.kinds if i not in dest.faces
                                                              or is_bridged(dest.faces[i])]),
                           "segmenter_iou": frame_iou(load_segmenter(None), clean, occluded, scene, marks)}
    ctx: dict[str, Any] = {}
    for mode in ("exclude", "segment"):
        started = time.perf_counter()
        report = merge(ws, MergeRequest(input=occluded, output=WORKDIR / f"{name}-{mode}.mp4", model=f"oracle-{name}",
                                        settings=MergeSettings(occlusion=mode)), swapper=oracle)
        passed: list[int] = []
        leaks = _leaks(ws, report.render_id, oracle, scene, marks, passed)
        glasses_frames = set(scene.glasses)
        out[mode] = {"merge_fps_without_model": round(report.frames / (time.perf_counter() - started), 2),
                     "flicker_ratio": report.flicker_ratio, "swapped": report.swapped,
                     "occluded_frames_not_swapped": len(passed),
                     "leak": _summary(leaks), "leak_sunglasses": _summary(leaks, glasses_frames),
                     "leak_other": _summary(leaks, set(leaks) - glasses_frames),
                     "glitches": _glitches(ws, report.render_id, oracle, leaks, marks, scene)}
        ctx[mode] = (report.render_id, leaks)
    if real_fps:
        out["merge_720p_cpu_preset"] = _real_model_fps(ws, occluded, dst)
    return out, {"oracle": oracle, "scene": scene, "marks": marks, "dest": dest, "renders": ctx, "name": name}


# -- retraining from polygons -----------------------------------------------------------------------
def _polygons(mask: np.ndarray, face: Any) -> list[dict[str, Any]]:
    """Exclude polygons around ``mask`` (frame pixels), in review's stored form (crop coordinates / size)."""
    import cv2

    from doppel.ops.align import transform_points

    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = []
    for c in sorted(contours, key=cv2.contourArea, reverse=True)[:3]:
        pts = cv2.approxPolyDP(c, 1.5, True).reshape(-1, 2).astype(np.float64)
        if len(pts) >= 3:
            crop = transform_points(pts, face.transform) / face.size
            out.append({"mode": "exclude", "points": np.clip(crop, -1, 2).round(5).tolist()[:256]})
    return out


def retrain(ws: Any, run: dict[str, Any], minutes: float) -> dict[str, Any]:
    from doppel.workflow.merge import add_override
    from doppel.workflow.segment import MaskTrainRequest, fine_tune_config, segmenter_dir, train_mask

    render_id, leaks = run["renders"]["segment"]
    scene, dest = run["scene"], run["dest"]
    kinds: dict[str, list[int]] = {}
    for i in scene.occluder:
        if i in dest.faces:
            kinds.setdefault(scene.kinds[i], []).append(i)
    worst = max(kinds, key=lambda k: np.mean([leaks.get(i, 0.0) for i in kinds[k]]))
    span = sorted(kinds[worst])
    labelled = [span[int(j)] for j in np.linspace(0, len(span) - 1, min(10, len(span))).round()]
    ids = [add_override(ws, render_id, f, f, {"mask_polygons": _polygons(scene.occluder[f], dest.faces[f])})
           for f in labelled]
    started = time.perf_counter()
    report = train_mask(ws, MaskTrainRequest(identities=(f"occ-{run['name']}",),
                                             config=fine_tune_config(minutes=minutes, threads=2)))
    seconds = time.perf_counter() - started
    for oid in ids:
        ws.renders.remove_override(oid)
    after = _leaks(ws, render_id, run["oracle"], scene, run["marks"])
    neighbours = set(span) - set(labelled)
    others = set(leaks) - set(span)  # the occluders nobody labelled: a retrain must not let them through
    result = {"occluder": worst, "labelled_frames": labelled, "seconds": round(seconds, 1),
              "train_steps": report.train["steps"],
              "before": {"labelled": _summary(leaks, set(labelled)), "neighbours": _summary(leaks, neighbours),
                         "others": _summary(leaks, others), "all": _summary(leaks)},
              "after": {"labelled": _summary(after, set(labelled)), "neighbours": _summary(after, neighbours),
                        "others": _summary(after, others), "all": _summary(after)}}
    shutil.rmtree(segmenter_dir(ws), ignore_errors=True)
    return result


def d12(ws: Any, minutes: float) -> dict[str, Any]:
    """IoU on lp_d12 with the labelled hand and pen, before and after retraining on 10 labelled frames."""
    from doppel.io.video import read_frames
    from doppel.merge.settings import MergeSettings
    from doppel.segment.crops import to_segmenter_crop
    from doppel.segment.labels import Polygon, eye_band, face_label, with_polygons
    from doppel.segment.metrics import iou
    from doppel.workflow.merge import MergeRequest, add_override, merge
    from doppel.workflow.segment import MaskTrainRequest, fine_tune_config, segmenter_dir, segmenter_for, train_mask

    labels = json.loads(FIXTURE.read_text())["frames"]
    frames = sorted(int(k) for k in labels)
    train_frames = frames[::2][:10]
    eval_frames = [f for f in frames if f not in train_frames]
    faces = {f.frame_index: f for f in ws.faces.of("d12")}

    class Recolour:
        resolution, face_type = RES, "full"

        def swap(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return np.ascontiguousarray(x[..., ::-1], np.float32), np.ones((*x.shape[:3], 1), np.float32)

    def measure() -> dict[str, Any]:
        seg = segmenter_for(ws)
        ious, false_face = [], []
        for fr in read_frames(MEDIA / D12):
            if fr.index not in eval_frames or fr.index not in faces:
                continue
            crop, lm, m = to_segmenter_crop(fr.image, faces[fr.index].landmarks_smooth, seg.size, seg.face_type)
            polys = [Polygon("exclude", np.asarray(p["points"], np.float64) @ m[:, :2].T + m[:, 2])
                     for p in labels[str(fr.index)]]
            gt = face_label(crop, lm)
            w = np.ones_like(gt)
            gt, _, _, _ = with_polygons(gt, np.zeros_like(gt), w, w, polys)
            hand = with_polygons(np.zeros_like(gt), np.zeros_like(gt), w, w,
                                 [Polygon("include", p.points) for p in polys])[0] > 0.5
            prob = seg.masks(crop[None])[0]
            ious.append(iou(prob, gt, ~eye_band(lm, seg.size)))  # his real glasses: not labelled, not counted
            if hand.any():
                false_face.append(float((prob[hand] > 0.5).mean()))
        return {"frames": len(ious), "iou": round(float(np.mean(ious)), 4),
                "hand_pen_pixels_in_crop_called_face": round(float(np.mean(false_face)), 4) if false_face else None}

    before = measure()
    _register(ws, "oracle-d12", "d12")
    report = merge(ws, MergeRequest(input=MEDIA / D12, output=WORKDIR / "d12.mp4", model="oracle-d12",
                                    settings=MergeSettings()), swapper=Recolour())
    from doppel.ops.align import transform_points

    for f in train_frames:
        face = faces[f]
        polys = [{"mode": "exclude", "points": (transform_points(np.asarray(p["points"], np.float64), face.transform)
                                                / face.size).clip(-1, 2).round(5).tolist()} for p in labels[str(f)]]
        add_override(ws, report.render_id, f, f, {"mask_polygons": polys})
    started = time.perf_counter()
    train_mask(ws, MaskTrainRequest(identities=("d12",), config=fine_tune_config(minutes=minutes, threads=2)))
    seconds = time.perf_counter() - started
    after = measure()
    shutil.rmtree(segmenter_dir(ws), ignore_errors=True)
    return {"labelled": frames, "trained_on": train_frames, "evaluated_on": eval_frames, "base": before,
            "retrained": after, "retrain_seconds": round(seconds, 1)}


# -- speed ----------------------------------------------------------------------------------------
def speed(quick: bool) -> dict[str, Any]:
    from doppel.segment import store
    from doppel.segment.segmenter import Segmenter, load_segmenter

    out = {}
    for runtime in ("onnx", "torch"):
        import torch

        torch.set_num_threads(2)
        seg = load_segmenter(None, runtime=runtime, threads=2)  # type: ignore[arg-type]
        crops = np.random.default_rng(0).integers(0, 255, (64, seg.size, seg.size, 3), dtype=np.uint8)
        seg.masks(crops[:16])
        rates, cpu = [], []
        for _ in range(2 if quick else 5):
            t0, c0 = time.perf_counter(), time.process_time()
            seg.masks(crops)
            rates.append(len(crops) / (time.perf_counter() - t0))
            cpu.append((time.process_time() - c0) / len(crops))
        out[runtime] = round(float(np.median(rates)), 1)
        # what two idle cores could do: the CPU time a face costs, all threads counted
        out[f"{runtime}_bound_2_free_cores"] = round(2.0 / float(np.median(cpu)), 1)
    out["size"] = Segmenter(store.load(store.base_dir()), runtime="torch").size
    return out


def _table(r: dict[str, Any]) -> str:
    held = [n for n, v in r["crops"].items() if v["held_out_person"]]

    def mean(method: str, key: str) -> float:
        return float(np.mean([r["crops"][n][method][key] for n in held]))

    rows = ["| | IoU crops all | IoU crops occluded | IoU clip frames all | IoU clip frames occluded | leak mean "
            "| leak p95 | sunglasses leak max | speed | train |", "|---|---|---|---|---|---|---|---|---|---|"]
    fps = r.get("merge_720p_cpu_preset", {})
    clips = list(r["clips"].values())
    for method, mode in (("heuristic", "exclude"), ("segmenter", "segment")):
        lk = [c[mode]["leak"] for c in clips]
        sg = [c[mode]["leak_sunglasses"] for c in clips]
        m = fps.get(mode, {})
        spd = f"merge 720p {m.get('fps', '-')} fps ({m.get('fps_bound_2_free_cores', '-')} on 2 free cores)"
        frames_all = frames_occ = "-"
        train = "-"
        if method == "segmenter":
            spd += f"; {r['speed']['onnx']} faces/s ({r['speed']['onnx_bound_2_free_cores']} on 2 free cores)"
            frames_all = f"{np.mean([c['segmenter_iou']['iou_all'] for c in clips]):.3f}"
            frames_occ = f"{np.mean([c['segmenter_iou']['iou_occluded'] for c in clips]):.3f}"
            rt = r["retrain"]
            train = (f"base {r.get('base_train_minutes')} min; retrain {rt['seconds']:.0f} s: {rt['occluder']} "
                     f"leak {rt['before']['neighbours']['mean']:.1%} -> {rt['after']['neighbours']['mean']:.1%} "
                     f"(frames not labelled), others {rt['before']['others']['mean']:.1%} -> "
                     f"{rt['after']['others']['mean']:.1%}")
        rows.append(f"| {method} | {mean(method, 'iou_all'):.3f} | {mean(method, 'iou_occluded'):.3f} | {frames_all} | "
                    f"{frames_occ} | {np.mean([x['mean'] for x in lk]):.3f} | {np.mean([x['p95'] for x in lk]):.3f} | "
                    f"{max(x.get('max', 0) for x in sg):.3f} | {spd} | {train} |")
    rows.append(f"| hull only | {mean('hull', 'iou_all'):.3f} | {mean('hull', 'iou_occluded'):.3f} | | | | | | | |")
    return "\n".join(rows)


def run(quick: bool = False) -> dict[str, Any]:
    if not (MEDIA / HELD_OUT[0]).exists():
        return {"passed": False, "skipped": True, "target": "", "headline": f"skipped: {MEDIA} is absent"}
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from doppel.segment import store
    from doppel.segment.segmenter import load_segmenter

    WORKDIR.mkdir(parents=True, exist_ok=True)
    held = HELD_OUT[:1] if quick else HELD_OUT
    ws = _workspace((*held, *SEEN, D12))
    seg = load_segmenter(None)
    _say("speed")
    result: dict[str, Any] = {"speed": speed(quick)}
    _say("crops", result)
    result["crops"] = crops(ws, seg, quick, held)
    meta = store.read_train(store.base_dir())
    result["base_train_minutes"] = round(meta.get("report", {}).get("seconds", 0) / 60, 1)
    result["clips"], runs = {}, {}
    for clip in held:
        _say(f"clip {clip}", result)
        result["clips"][_ident(clip)], runs[clip] = clip_run(ws, clip, quick, real_fps="720p" in clip)
        if "merge_720p_cpu_preset" in result["clips"][_ident(clip)]:
            result["merge_720p_cpu_preset"] = result["clips"][_ident(clip)].pop("merge_720p_cpu_preset")
    minutes = 1.0 if quick else 3.0
    _say("retrain", result)
    result["retrain"] = retrain(ws, runs[held[0]], minutes)
    _say("d12", result)
    result["d12"] = d12(ws, minutes)
    ws.close()
    clip_iou = [c["segmenter_iou"] for c in result["clips"].values()]
    iou_all = float(np.mean([c["iou_all"] for c in clip_iou]))
    iou_occ = float(np.mean([c["iou_occluded"] for c in clip_iou]))
    leak = [c["segment"]["leak"] for c in result["clips"].values()]
    leak_mean, leak_p95 = float(np.mean([x["mean"] for x in leak])), float(np.mean([x["p95"] for x in leak]))
    prec = [c["segment"]["glitches"]["precision_at_k"] for c in result["clips"].values()]
    checks = {"iou_all": iou_all >= BARS["iou_all"], "iou_occluded": iou_occ >= BARS["iou_occluded"],
              "leak_mean": leak_mean <= BARS["leak_mean"], "leak_p95": leak_p95 <= BARS["leak_p95"],
              "faces_per_s": max(result["speed"]["onnx"], result["speed"]["onnx_bound_2_free_cores"])
              >= BARS["faces_per_s"],
              "retrain": result["retrain"]["seconds"] <= BARS["retrain_s"],
              "retrain_keeps_others": result["retrain"]["after"]["others"]["mean"]
              <= result["retrain"]["before"]["others"]["mean"] + BARS["retrain_others"],
              "precision": all(p is None or p >= BARS["precision"] for p in prec)}
    if "merge_720p_cpu_preset" in result:
        seg_fps = result["merge_720p_cpu_preset"]["segment"]
        checks["merge_fps"] = max(seg_fps["fps"], seg_fps["fps_bound_2_free_cores"]) >= BARS["merge_fps"]
    result.update(checks=checks, passed=all(checks.values()),
                  target="IoU >= 0.92 all / >= 0.85 occluded (held-out people and occluders); leak <= 2% mean, "
                         "<= 5% p95; >= 60 faces/s; merge >= 12 fps at 720p; retrain < 5 min, the occluders it "
                         "was not shown no leakier (+0.5 points at most); glitch precision >= 0.9",
                  headline=f"IoU {iou_all:.3f} all / {iou_occ:.3f} occluded frames; leak {leak_mean:.1%} mean, "
                           f"{leak_p95:.1%} p95; {result['speed']['onnx']} faces/s; retrain "
                           f"{result['retrain']['seconds']:.0f} s; precision {prec}")
    try:
        result["table"] = _table(result)
    except (KeyError, TypeError, ValueError) as exc:  # keep the measurements even if the summary breaks
        result["table"] = f"(no table: {type(exc).__name__}: {exc})"
    return result


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(json.dumps(run(args.quick), indent=2, default=str))
