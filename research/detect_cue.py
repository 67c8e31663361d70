"""Can a swap be told from a real face without training, by the pixel-scale detail it lacks?

A face swap renders the face at a fixed resolution (doppel's ``cpu`` preset: 96 px, the stand-in swapper of
``bench_detect``: 128 px) and scales it up onto a plate where the face is 250-400 px wide: inside the face the
finest band of detail (sensor grain, pores, eyelashes) is missing, while the rest of the frame keeps it. This
measures two cues on the detect benchmark's held-out people, per 24-frame clip (median over frames):

- ``face``: log of the finest band's energy over the next band's inside the face (a blur measure of the
  face alone);
- ``ring``: the same ratio inside the face over the same ratio in a ring around it (hair, neck, background):
  the plate's own camera, focus, grain and encoding cancel out.

A lower value means less fine detail; the score of a clip is minus the cue. ROC AUC per kind of fake against
the real clips through the same encoding, as ``bench_detect`` computes it.

    python research/detect_cue.py       # writes research/results/detect-cue.json
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

import bench_detect as BD  # noqa: E402
import detect_fakes as fakes  # noqa: E402
import detect_footage as footage  # noqa: E402
from doppel.merge.settings import MergeSettings  # noqa: E402
from doppel.ops.face import hull_mask  # noqa: E402

MODELS = {"d19": "d18-d19-base+late+detail-30cpu", "s18": "d3-s18-base+late+detail-25cpu"}


def _bands(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    g1 = cv2.GaussianBlur(gray, (0, 0), 1.0)
    g2 = cv2.GaussianBlur(gray, (0, 0), 2.0)
    return (gray - g1) ** 2, (g1 - g2) ** 2


def cues(frame: np.ndarray, lm: np.ndarray) -> tuple[float, float] | None:
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
    h, w = gray.shape
    size = max(h, w)
    hull = hull_mask(lm.astype(np.float32), size, "face")[:h, :w] > 0.5
    width = float(lm[:, 0].max() - lm[:, 0].min())
    k = max(3, int(width * 0.08)) | 1
    core = cv2.erode(hull.astype(np.uint8), np.ones((k, k), np.uint8)) > 0
    outer = cv2.dilate(hull.astype(np.uint8), np.ones((3 * k, 3 * k), np.uint8)) > 0
    near = cv2.dilate(hull.astype(np.uint8), np.ones((k, k), np.uint8)) > 0
    ring = outer & ~near
    if core.sum() < 200 or ring.sum() < 200:
        return None
    fine, mid = _bands(gray)
    rf = float(fine[core].mean() + 1e-3) / float(mid[core].mean() + 1e-3)
    rr = float(fine[ring].mean() + 1e-3) / float(mid[ring].mean() + 1e-3)
    return float(np.log(rf)), float(np.log(rf) - np.log(rr))


def clip_scores(frames: fakes.Frames, marks: dict[int, np.ndarray], scale: float) -> list[tuple[float, float]]:
    out = []
    for clip in BD._clips(frames):
        vals = [c for i, f in clip if i in marks and (c := cues(f, marks[i] * scale)) is not None]
        if vals:
            arr = np.array(vals)
            out.append((-float(np.median(arr[:, 0])), -float(np.median(arr[:, 1]))))
    return out


def main() -> None:
    from doppel.train.swapper import load_swapper

    people = footage.TEST
    tracked = {p: fakes.track(footage.clip_path(p), BD.STRIDE) for p in people}
    donors = {p: fakes.Donor.of(tracked[p]) for p in people}
    posts: dict[str, tuple[Callable[[fakes.Frames], fakes.Frames], float]] = {
        "crf18": (lambda f: fakes.encode(f, 18), 1.0), "crf28": (lambda f: fakes.encode(f, 28), 1.0),
        "half": (lambda f: fakes.encode(f, 18, scale=0.5), 0.5)}
    reals: dict[str, list[tuple[float, float]]] = {k: [] for k in posts}
    kinds: dict[str, tuple[str, list[tuple[float, float]]]] = {}

    def add(kind: str, post: str, frames: fakes.Frames, marks: dict[int, np.ndarray]) -> None:
        fn, scale = posts[post]
        kinds.setdefault(kind, (post, []))[1].extend(clip_scores(fn(frames), marks, scale))

    rng = np.random.default_rng(17)
    for p in people:
        clip = tracked[p]
        mirrored = [(i, np.ascontiguousarray(f[:, ::-1])) for i, f in clip.frames]
        w = clip.frames[0][1].shape[1]
        mirror_marks = {i: np.stack([w - 1 - lm[:, 0], lm[:, 1]], axis=1) for i, lm in clip.landmarks.items()}
        for post, (fn, scale) in posts.items():
            reals[post] += clip_scores(fn(clip.frames), clip.landmarks, scale)
            reals[post] += clip_scores(fn(mirrored), mirror_marks, scale)
        rct = MergeSettings(mask_mode="hull", colour="rct", blend="alpha", smoothing=False)
        made = fakes.standin(clip, donors[BD.DONOR[p]], rct)
        for post in posts:
            add(f"standin-rct-{post}", post, made, clip.landmarks)
        sbi_frames: fakes.Frames = []
        for c in BD._clips(clip.frames):
            sbi_frames += fakes.sbi(fakes.Tracked(c, clip.landmarks), BD.draw_params(rng))
        add("sbi-crf18", "crf18", sbi_frames, clip.landmarks)
        if p in MODELS:
            net = load_swapper(ROOT / "research" / "cache" / "runs" / MODELS[p] / "m", runtime="torch")
            made = fakes.doppel(clip, net, MergeSettings())
            for post in posts:
                add(f"doppel-30cpu-{post}", post, made, clip.landmarks)
        print(f"detect_cue: {p} done", file=sys.stderr, flush=True)
    rows = {}
    for kind, (post, scores) in kinds.items():
        rows[kind] = {"fakes": len(scores), "reals": len(reals[post]),
                      "auc_face": round(BD.auc([r[0] for r in reals[post]], [s[0] for s in scores]), 3),
                      "auc_ring": round(BD.auc([r[1] for r in reals[post]], [s[1] for s in scores]), 3)}
        print(kind, rows[kind])
    (ROOT / "research" / "results" / "detect-cue.json").write_text(json.dumps(
        {"rows": rows, "reals": {k: v for k, v in reals.items()},
         "fakes": {k: v[1] for k, v in kinds.items()}}, indent=1))


if __name__ == "__main__":
    main()
