"""Quality per compute: does the ``cpu`` preset learn a recognisable swap in 30 minutes on 2 cores,
and how much faster does it get there from a base model?

Steps (``../shared/media``, see its ``SOURCES.md``; skipped without it):

1. Extract every shared clip into a fresh workspace (one identity per clip) with doppel's own
   extraction, and record a demo consent for the swap sources.
2. Per pair (d18 -> d19 and d19 -> d18; ``--quick``: d18 -> d19 only), train the ``cpu`` preset for
   ``MINUTES`` with 10 % of the faces held out; held-out reconstruction SSIM is logged against
   time in ``metrics.csv`` (``eval_ssim``).
3. Swap every destination face (EMA weights, the runtime merge would use), paste it into the
   destination crop with the learned mask, embed it with the foundation's identity embedder
   (dlib ResNet), and count the frames whose embedding is closer to the source identity's centroid
   than to the destination's. Bar: >= 90 % of frames.
4. Base model: pretrain on the other four clips for ``MINUTES``, then train the first pair from it
   for ``MINUTES``; report both SSIM-vs-time curves and the time each needs to reach the SSIM the
   from-scratch run ends with.
"""

from __future__ import annotations

import csv
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MEDIA = ROOT.parent / "shared" / "media"
CLIPS = {"d18": "lp_d18_man_neutral_studio.mp4", "d19": "lp_d19_man_glasses_studio.mp4",
         "d0": "lp_d0_asian_man_greenscreen.mp4", "d3": "lp_d3_woman_expressions.mp4",
         "d12": "lp_d12_man_talking_gesturing.mp4", "s18": "lp_s18_woman_redhair_720p.mp4"}
PAIRS = [("d18", "d19"), ("d19", "d18")]
BAR = 0.90


def _extract(ws: Any, names: list[str]) -> dict[str, int]:
    from doppel.extract.pipeline import extract_clip
    from doppel.faceset.query import faces

    counts = {}
    for name in names:
        extract_clip(ws, name, MEDIA / CLIPS[name], size=256)
        counts[name] = len(faces(ws, name))
    return counts


def _train(ws: Any, name: str, src: tuple[str, ...], dst: tuple[str, ...], minutes: float, *,
           base: Path | None = None, pretrain: bool = False, eval_every: float = 1.0) -> list[dict[str, float]]:
    from doppel.train.config import PRESETS, model_config, train_config
    from doppel.train.loop import RunSpec, train

    p = PRESETS["cpu"]
    spec = RunSpec(name=name, model=model_config(p.model), preset="cpu", src=src, dst=dst, pretrain=pretrain,
                   train=train_config(batch=p.batch, workers=0, preview_minutes=eval_every, checkpoint_minutes=10),
                   minutes=minutes, base=base, holdout=0.1)
    train(ws, spec)
    with open(ws.models_dir() / name / "metrics.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("eval_ssim")]
    return [{"minutes": round(float(r["elapsed_s"]) / 60, 2), "step": int(r["step"]),
             "eval_ssim": round(float(r["eval_ssim"]), 4)} for r in rows]


def _embed_faces(embedder: Any, crops: list[np.ndarray], landmarks: list[np.ndarray]) -> np.ndarray:
    return np.stack([embedder.embed(c, lm) for c, lm in zip(crops, landmarks, strict=True)])


def identity_wins(ws: Any, model: str, src: str, dst: str) -> dict[str, Any]:
    """Fraction of destination frames whose swapped face embeds closer to ``src`` than to ``dst``."""
    from doppel.eval.metrics import centroid, cosine
    from doppel.extract.dlib_resnet import DlibResnetEmbedder
    from doppel.faceset.query import faces
    from doppel.train.swapper import load_swapper

    swapper = load_swapper(ws.models_dir() / model)
    r = swapper.resolution
    embedder = DlibResnetEmbedder()

    def degraded(path: Path) -> np.ndarray:  # the model's resolution, brought back to the crop size
        img = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        size = img.shape[0]
        return cv2.resize(cv2.resize(img, (r, r), interpolation=cv2.INTER_AREA), (size, size),
                          interpolation=cv2.INTER_CUBIC)

    cents = {}
    for ident in (src, dst):
        recs = faces(ws, ident)[::3]
        cents[ident] = centroid(_embed_faces(embedder, [degraded(f.aligned_path) for f in recs],
                                             [f.aligned_landmarks() for f in recs]))
    dst_faces = faces(ws, dst)
    wins, margins = 0, []
    for i in range(0, len(dst_faces), 16):
        chunk = dst_faces[i:i + 16]
        crops = [cv2.cvtColor(cv2.imread(str(f.aligned_path)), cv2.COLOR_BGR2RGB) for f in chunk]
        size = crops[0].shape[0]
        small = np.stack([cv2.resize(c, (r, r), interpolation=cv2.INTER_AREA) for c in crops]).astype(np.float32)
        swapped, masks = swapper.swap(small / 255.0)
        pasted = []
        for c, s, m in zip(crops, swapped, masks, strict=True):
            s_up = cv2.resize(s, (size, size), interpolation=cv2.INTER_CUBIC)
            m_up = cv2.resize(m[..., 0], (size, size), interpolation=cv2.INTER_LINEAR)[..., None]
            pasted.append(np.clip(s_up * 255 * m_up + c * (1 - m_up), 0, 255).astype(np.uint8))
        emb = _embed_faces(embedder, pasted, [f.aligned_landmarks() for f in chunk])
        cs, cd = cosine(emb, cents[src]), cosine(emb, cents[dst])
        wins += int((cs > cd).sum())
        margins += list(cs - cd)
    return {"frames": len(dst_faces), "src_closer": wins, "fraction": round(wins / max(1, len(dst_faces)), 3),
            "median_margin": round(float(np.median(margins)), 4) if margins else None}


def _time_to(curve: list[dict[str, float]], level: float) -> float | None:
    return next((p["minutes"] for p in curve if p["eval_ssim"] >= level), None)


def run(quick: bool) -> dict[str, Any]:
    if not MEDIA.is_dir():
        return {"target": f"identity closer to src on >= {BAR:.0%} of frames", "passed": False, "skipped": True,
                "headline": "skipped: ../shared/media is absent"}
    from doppel.faceset.workspace import Workspace
    from doppel.provenance.consent import add_consent

    minutes = 2.0 if quick else 30.0
    eval_every = 0.5 if quick else 2.0
    pairs = PAIRS[:1] if quick else PAIRS
    load_before = os.getloadavg()
    out: dict[str, Any] = {"minutes": minutes, "pairs": {}, "quick": quick}
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
        ws = Workspace.init(Path(tmp) / "ws")
        t = time.perf_counter()
        out["faces"] = _extract(ws, list(CLIPS))
        out["extract_s"] = round(time.perf_counter() - t, 1)
        for name in CLIPS:
            add_consent(ws, name, subject=f"LivePortrait demo footage {name}", scope="doppel benchmark",
                        basis="public-domain-demo")
        for src, dst in pairs:
            name = f"{src}-{dst}"
            curve = _train(ws, name, (src,), (dst,), minutes, eval_every=eval_every)
            out["pairs"][name] = {"curve": curve, "identity": identity_wins(ws, name, src, dst),
                                  "loadavg": [round(x, 2) for x in os.getloadavg()]}
        others = tuple(n for n in CLIPS if n not in {s for p in PAIRS for s in p})
        base_curve = _train(ws, "base", others, others, minutes, pretrain=True, eval_every=eval_every)
        src, dst = pairs[0]
        with_base = _train(ws, f"{src}-{dst}-from-base", (src,), (dst,), minutes, base=ws.models_dir() / "base",
                           eval_every=eval_every)
        scratch = out["pairs"][f"{src}-{dst}"]["curve"]
        level = scratch[-1]["eval_ssim"] if scratch else float("nan")
        out["base"] = {"pretrain_curve": base_curve, "from_base_curve": with_base, "scratch_curve": scratch,
                       "target_ssim": level, "scratch_minutes_to_target": _time_to(scratch, level),
                       "from_base_minutes_to_target": _time_to(with_base, level),
                       "identity_from_base": identity_wins(ws, f"{src}-{dst}-from-base", src, dst)}
        ws.close()
    fractions = [p["identity"]["fraction"] for p in out["pairs"].values()]
    out["passed"] = bool(fractions) and min(fractions) >= BAR and not quick
    out["target"] = f"cpu preset, {minutes:g} min on 2 cores: swapped identity closer to src on >= {BAR:.0%} of frames"
    b = out["base"]
    out["headline"] = (f"src-closer fractions {fractions}; from-base reaches SSIM {b['target_ssim']} in "
                       f"{b['from_base_minutes_to_target']} min vs {b['scratch_minutes_to_target']} min from scratch")
    out["loadavg_before"] = [round(x, 2) for x in load_before]
    out["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    return out


if __name__ == "__main__":
    import json

    sys.path.insert(0, str(ROOT / "src"))
    print(json.dumps(run("--quick" in sys.argv), indent=2))
