"""A fast loop for detector recipes (issue 17): the benchmark's clips built once, as face crops, then any
detector scored on them in minutes.

``bench/bench_detect.py`` rebuilds every fake clip and re-finds every face each run (15-20 minutes); a
recipe search needs the same clips scored many times. This builds, per person and kind, what the detector
would see (the largest face of each frame, found by :class:`doppel.detect.faces.FaceFinder` on the clip
after its encoding, cut as an aligned ``whole`` crop at 256 px; smaller inputs are resized from it) and
caches it in ``tmp/detect-lab/``. Kinds are those of ``bench_detect`` (reals through each encoding, plus
their mirror images; stand-in swaps per colour transfer; self-blends; doppel swaps by the 30-CPU-minute
models of the quality lab, ``research/cache/runs``).

    python research/detect_lab.py build test          # d18 d19 d3 s18 (the benchmark's people)
    python research/detect_lab.py build dev           # d12 d20 (for choosing a recipe; never the test set)
    python research/detect_lab.py score FOLDER [--set test]   # AUC per kind, a detector folder

A clip is 24 frames (every second frame of 48), scored as ``doppel detect`` scores one (the mean of its
most suspicious 30% of frames).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

import detect_fakes as fakes  # noqa: E402
import detect_footage as footage  # noqa: E402
from doppel.detect.faces import FaceFinder, crop_face, largest  # noqa: E402
from doppel.detect.infer import clip_score  # noqa: E402
from doppel.detect.sbi import draw_params  # noqa: E402
from doppel.merge.settings import MergeSettings  # noqa: E402

CACHE = ROOT / "tmp" / "detect-lab"
SIZE = 256
STRIDE = 2
CLIP = footage.SEGMENT // STRIDE
SETS = {"test": {"d18": "d19", "d19": "d18", "d3": "s18", "s18": "d3"}, "dev": {"d12": "d20", "d20": "d12"}}
MODELS = {"d19": "d18-d19-base+late+detail-30cpu", "s18": "d3-s18-base+late+detail-25cpu"}
POSTS: dict[str, Callable[[fakes.Frames], fakes.Frames]] = {
    "crf18": lambda f: fakes.encode(f, 18), "crf28": lambda f: fakes.encode(f, 28),
    "half": lambda f: fakes.encode(f, 18, scale=0.5)}


def crops_of(frames: fakes.Frames) -> tuple[np.ndarray, np.ndarray]:
    """The largest face of each frame as a ``whole`` crop at ``SIZE`` and the frame's index."""
    finder = FaceFinder(detect_every=5)
    crops, where = [], []
    for index, frame in frames:
        found = finder.step(index, frame)
        if found:
            crops.append(crop_face(frame, largest(found).landmarks, SIZE, "whole")[0])
            where.append(index)
    return np.array(crops, np.uint8).reshape(-1, SIZE, SIZE, 3), np.array(where, np.int64)


def _save(path: Path, frames: fakes.Frames) -> None:
    c, f = crops_of(frames)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, crops=c, frames=f)
    tmp.replace(path)
    print(f"  {path.name}: {len(c)} faces", flush=True)


def build(which: str) -> None:
    people = SETS[which]
    out = CACHE / which
    out.mkdir(parents=True, exist_ok=True)
    tracked = {p: fakes.track(footage.clip_path(p), STRIDE) for p in people}
    donors = {p: fakes.Donor.of(tracked[p]) for p in people}
    rng = np.random.default_rng(17)
    for p, donor in people.items():
        print(p, flush=True)
        for kind, make in _kinds(p, tracked[p], donors[donor], rng).items():
            path = out / f"{p}-{kind}.npz"
            if not path.is_file():
                _save(path, make())


def _kinds(p: str, clip: fakes.Tracked, donor: fakes.Donor, rng: np.random.Generator
           ) -> dict[str, Callable[[], fakes.Frames]]:
    """How to make each kind of clip of person ``p`` (lazily: only the missing ones are made)."""
    todo: dict[str, Callable[[], fakes.Frames]] = {}
    mirrored = [(i, np.ascontiguousarray(f[:, ::-1])) for i, f in clip.frames]
    for post, fn in POSTS.items():
        todo[f"real-{post}"] = lambda fn=fn: fn(clip.frames)
        todo[f"realm-{post}"] = lambda fn=fn: fn(mirrored)
    for colour in ("rct", "none", "idt", "mkl"):
        s = MergeSettings(mask_mode="hull", colour=colour, blend="alpha", smoothing=False)
        todo[f"standin-{colour}"] = lambda s=s: POSTS["crf18"](fakes.standin(clip, donor, s))
    poisson = MergeSettings(mask_mode="hull", colour="rct", blend="poisson", smoothing=False)
    rct = MergeSettings(mask_mode="hull", colour="rct", blend="alpha", smoothing=False)
    todo["standin-poisson"] = lambda: POSTS["crf18"](fakes.standin(clip, donor, poisson))
    todo["standin-half"] = lambda: POSTS["half"](fakes.standin(clip, donor, rct))

    def sbi() -> fakes.Frames:
        frames: fakes.Frames = []
        for i in range(0, len(clip.frames) - CLIP // 2, CLIP):
            frames += fakes.sbi(fakes.Tracked(clip.frames[i:i + CLIP], clip.landmarks), draw_params(rng))
        return POSTS["crf18"](frames)

    todo["sbi"] = sbi
    if p in MODELS:
        from doppel.train.swapper import load_swapper

        model = ROOT / "research" / "cache" / "runs" / MODELS[p] / "m"
        made: list[fakes.Frames] = []

        def swapped() -> fakes.Frames:
            if not made:
                made.append(fakes.doppel(clip, load_swapper(model, runtime="torch"), MergeSettings()))
            return made[0]

        for post, fn in POSTS.items():
            todo[f"doppel-{post}"] = lambda fn=fn: fn(swapped())
    return todo


def load_set(which: str) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    out = {}
    for path in sorted((CACHE / which).glob("*.npz")):
        if path.name.endswith(".tmp.npz"):
            continue
        person, kind = path.stem.split("-", 1)
        d = np.load(path)
        out[(person, kind)] = (d["crops"], d["frames"])
    return out


def clip_scores(probs: np.ndarray, frames: np.ndarray) -> list[float]:
    """24-frame clips (every second frame of 48-frame runs), each scored from its top 30% of frames."""
    if not len(frames):
        return []
    out = []
    lo, hi = int(frames.min()), int(frames.max()) + 1
    for s in range(lo, hi, footage.SEGMENT):
        sel = (frames >= s) & (frames < s + footage.SEGMENT)
        if sel.sum() >= CLIP // 2:
            out.append(clip_score(probs[sel].tolist()))
    return out


def auc(real: list[float], fake: list[float]) -> float:
    r, f = np.asarray(real)[:, None], np.asarray(fake)[None, :]
    return float(((f > r).sum() + 0.5 * (f == r).sum()) / max(1, r.size * f.size))


def evaluate(score: Callable[[np.ndarray], np.ndarray], which: str = "test") -> dict[str, dict[str, float]]:
    """AUC per kind of fake against the reals of the same people through the same encoding (and their mirror
    images): a kind made on two of the four people is compared with those two people's real clips, so a
    person the detector happens to score high or low does not move the figure."""
    data = load_set(which)
    clips: dict[tuple[str, str], list[float]] = {}
    per_frame: dict[tuple[str, str], list[float]] = {}
    for (person, kind), (crops, frames) in data.items():
        probs = score(crops)
        clips[(person, kind)] = clip_scores(probs, frames)
        per_frame[(person, kind)] = probs.tolist()
    rows = {}
    for kind in sorted({k for _, k in clips if not k.startswith("real")}):
        people = sorted(p for p, k in clips if k == kind)
        last = kind.rsplit("-", 1)[-1]
        post = last if last in POSTS else "crf18"

        def pool(table: dict[tuple[str, str], list[float]], kinds: tuple[str, ...], people: list[str] = people
                 ) -> list[float]:
            return [v for p in people for k in kinds for v in table.get((p, k), [])]

        fake, real = pool(clips, (kind,)), pool(clips, (f"real-{post}", f"realm-{post}"))
        rows[kind] = {"auc": round(auc(real, fake), 4),
                      "frame_auc": round(auc(pool(per_frame, (f"real-{post}", f"realm-{post}")),
                                             pool(per_frame, (kind,))), 4),
                      "people": ",".join(people), "fake": len(fake), "real": len(real),
                      "fake_median": round(float(np.median(fake)), 4), "real_median": round(float(np.median(real)), 4)}
    return rows


def detector_scorer(folder: Path, boundary: float = 0.0) -> Callable[[np.ndarray], np.ndarray]:
    """The detector's probabilities; ``boundary`` > 0: instead the mean of that share of the highest values
    of its face X-ray map."""
    from doppel.detect.calibrate import Calibration
    from doppel.detect.infer import Detector
    from doppel.detect.model import load

    det = Detector(load(folder), Calibration())

    def score(crops: np.ndarray) -> np.ndarray:
        if crops.shape[1] != det.size:
            crops = np.array([cv2.resize(c, (det.size, det.size), interpolation=cv2.INTER_AREA) for c in crops],
                             np.uint8).reshape(-1, det.size, det.size, 3)
        probs, maps = det.score_crops(crops)
        if boundary <= 0:
            return probs
        flat = np.sort(maps.reshape(len(maps), -1), axis=1)[:, ::-1]
        k = max(1, round(boundary * flat.shape[1]))
        return flat[:, :k].mean(axis=1)

    return score


def main() -> int:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("which", choices=sorted(SETS))
    s = sub.add_parser("score")
    s.add_argument("folder", type=Path)
    s.add_argument("--set", default="test", choices=sorted(SETS))
    s.add_argument("--boundary", type=float, default=0.0, help="score by the top share of the X-ray map")
    args = ap.parse_args()
    if args.cmd == "build":
        build(args.which)
        return 0
    rows = evaluate(detector_scorer(args.folder, args.boundary), args.set)
    for kind, r in rows.items():
        print(f"{kind:18s} AUC {r['auc']:.3f} (frames {r['frame_auc']:.3f})  fake {r['fake_median']:.3f} "
              f"real {r['real_median']:.3f}  "
              f"({r['fake']} / {r['real']})")
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
