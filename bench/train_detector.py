"""Train the detector doppel ships (``src/doppel/detect/weights``) on the shared footage, and calibrate it.

    nice -n 5 python bench/train_detector.py --steps 1500

1. faces of the ``TRAIN`` and ``CALIBRATE`` people (``detect_footage.py``; the ``TEST`` people are never read);
2. train on the first 75% of each training clip's frames: real faces against self-blended and merge-made
   fakes (:mod:`doppel.detect.train`), a fixed number of steps, one thread, fp32;
3. calibrate: score real clips (48-frame runs, and their mirror images) of the ``CALIBRATE`` people and of
   the unseen last 25% of the training clips, and choose the threshold that keeps their false-positive
   rate at or under 5% (:mod:`doppel.detect.calibrate`);
4. write ``config.json``, ``detector.safetensors``, ``calibration.json`` and ``train.json`` (the recipe,
   the people and frames used, the loss history, CPU seconds).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "src"))
sys.path.insert(0, str(BENCH))

import detect_footage as footage  # noqa: E402
from doppel.detect.calibrate import calibrate, save_calibration  # noqa: E402
from doppel.detect.data import FaceSet  # noqa: E402
from doppel.detect.infer import Detector, clip_score  # noqa: E402
from doppel.detect.model import WEIGHTS_DIR, DetectorConfig, FaceForensicsNet, save  # noqa: E402
from doppel.detect.train import StepInfo, TrainSettings, train  # noqa: E402


def score_runs(detector: Detector, found: FaceSet, runs: list[np.ndarray], *, mirror: bool = False) -> list[float]:
    """Clip scores of runs of cached faces: each frame's most suspicious face, the clip's top frames."""
    crops = found.crops[:, :, ::-1] if mirror else found.crops
    probs, _ = detector.score_crops(np.ascontiguousarray(crops))
    out = []
    for idx in runs:
        per_frame: dict[int, float] = {}
        for i in idx:
            f = int(found.frames[i])
            per_frame[f] = max(per_frame.get(f, 0.0), float(probs[i]))
        out.append(clip_score(per_frame.values()))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sbi-share", type=float, default=TrainSettings().sbi_share,
                        help="share of the fakes made by self-blending (the rest from another person's face)")
    parser.add_argument("--paired", action="store_true", help="every face in a batch both real and made fake")
    parser.add_argument("--swaps", default="", help="SRC-DST,...: DST's faces come with their doppel-swapped "
                        "twins (detect_models.py's model of the pair), a fake kind of their own")
    parser.add_argument("--swap-share", type=float, default=0.0, help="of the fakes, the share taken from those twins")
    parser.add_argument("--snapshots", type=int, default=0, help="also save the weights every N steps (OUT/step-N)")
    parser.add_argument("--patch-weight", type=float, default=0.0, help="per-location loss of a patch head")
    parser.add_argument("--balanced", action="store_true", help="every person drawn equally often")
    parser.add_argument("--camera", action="store_true", help="random camera and delivery chains on every image")
    parser.add_argument("--head", choices=("global", "patch"), default=DetectorConfig().head)
    parser.add_argument("--patch-stage", type=int, choices=(2, 3), default=DetectorConfig().patch_stage)
    parser.add_argument("--size", type=int, default=DetectorConfig().input_size, help="input crop size (px)")
    parser.add_argument("--people", default=",".join(footage.TRAIN),
                        help="who to train on (comma-separated; default the shipped detector's six)")
    args = parser.parse_args()
    train_people = tuple(p for p in args.people.split(",") if p)
    if set(train_people) & set(footage.TEST):
        parser.error(f"the benchmark's people ({', '.join(footage.TEST)}) are never trained on")
    if not footage.available():
        print(f"train_detector: the shared footage is not at {footage.MEDIA}", file=sys.stderr)
        return 2
    config = DetectorConfig(input_size=args.size, head=args.head, patch_stage=args.patch_stage)
    t0 = time.perf_counter()
    faces = {p: footage.faces(p, config.input_size) for p in (*train_people, *footage.CALIBRATE)}
    pairs = [tuple(x.split("-", 1)) for x in args.swaps.split(",") if x]
    for src, dst in pairs:
        if dst not in train_people or src in footage.TEST:
            parser.error(f"--swaps {src}-{dst}: both must be training people")
        faces[dst] = footage.swapped(src, dst, config.input_size)
    seen, held = {}, {}
    for p in train_people:
        seen[p], held[p] = footage.split(faces[p])
    train_set = FaceSet.concat(seen.values())
    print(f"faces: {len(train_set)} training crops of {len(train_people)} people "
          f"({time.perf_counter() - t0:.0f} s)", flush=True)
    settings = TrainSettings(steps=args.steps, threads=args.threads, seed=args.seed, sbi_share=args.sbi_share,
                             paired=args.paired, camera=args.camera, balanced=args.balanced,
                             swap_share=args.swap_share, patch_weight=args.patch_weight)

    model = FaceForensicsNet(config)

    def report(info: StepInfo) -> None:
        print(f"step {info.step}/{info.total}: loss {info.loss:.3f}, accuracy {info.accuracy:.2f}, "
              f"{info.seconds:.0f} s", flush=True)
        if args.snapshots and info.step % args.snapshots == 0 and info.step < info.total:
            save(model, args.out / f"step-{info.step}")

    result = train(train_set, settings, init=model, on_step=report)
    args.out.mkdir(parents=True, exist_ok=True)
    save(result.model, args.out)
    # calibrate on real clips the network never saw
    detector = Detector(result.model, calibrate([0.0]))
    real: list[float] = []
    clips = 0
    for p in train_people:
        runs = footage.segments(held[p])
        real += score_runs(detector, held[p], runs) + score_runs(detector, held[p], runs, mirror=True)
        clips += len(runs)
    for p in footage.CALIBRATE:
        runs = footage.segments(faces[p])
        real += score_runs(detector, faces[p], runs) + score_runs(detector, faces[p], runs, mirror=True)
        clips += len(runs)
    cal = calibrate(real, frames_per_clip=footage.SEGMENT,
                    source=f"{clips} real {footage.SEGMENT}-frame clips and their mirror images: person "
                           f"{', '.join(footage.CALIBRATE)} (never trained on) and the last "
                           f"{1 - footage.TRAIN_SHARE:.0%} of each training clip")
    save_calibration(cal, args.out)
    info = {"recipe": settings.model_dump(), "config": config.model_dump(), "train_people": list(train_people),
            "swap_models": [f"{a}-{b}" for a, b in pairs],
            "calibrate_people": list(footage.CALIBRATE), "held_out_people": list(footage.TEST),
            "train_crops": len(train_set), "train_share": footage.TRAIN_SHARE,
            "clips": {p: footage.PEOPLE[p] for p in (*train_people, *footage.CALIBRATE)},
            "seconds": round(result.seconds, 1), "cpu_seconds": round(result.cpu_seconds, 1),
            "history": result.history, "calibration_scores": sorted(round(v, 4) for v in real)}
    (args.out / "train.json").write_text(json.dumps(info, indent=2) + "\n")
    print(f"calibration: threshold {cal.threshold:.3f} on {cal.real_clips} real clips (FPR {cal.fpr_on_real:.1%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
