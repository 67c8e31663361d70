"""The shared footage as the detector sees it (not a benchmark of its own): who is in which clip, which
people train, calibrate and test the shipped detector, and their faces, cached.

Eleven people, one clip each (``../shared/media``, see its ``SOURCES.md``). Whole people are held out:

- ``TRAIN``: the detector learns real faces (and fakes made from them) from the first ``TRAIN_SHARE`` of
  these clips' frames;
- ``CALIBRATE``: the threshold is chosen on real clips of ``CALIBRATE`` people and on the rest of the
  training clips (frames the network never saw);
- ``TEST``: the benchmark's people, never seen in training or calibration (also the people the swap
  models of ``detect_models.py`` are trained on).

Faces are cached in ``tmp/detect-cache`` (git-ignored): aligned ``whole`` crops at the network's input size.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "src"))

from doppel.detect.data import FaceSet, collect  # noqa: E402
from doppel.io.video import read_frames  # noqa: E402

MEDIA = BENCH.parents[1] / "shared" / "media"
CACHE = Path(os.environ.get("DOPPEL_DETECT_CACHE", BENCH.parent / "tmp" / "detect-cache"))
PEOPLE = {
    "d0": "lp_d0_asian_man_greenscreen.mp4", "d3": "lp_d3_woman_expressions.mp4",
    "d12": "lp_d12_man_talking_gesturing.mp4", "d18": "lp_d18_man_neutral_studio.mp4",
    "d19": "lp_d19_man_glasses_studio.mp4", "s18": "lp_s18_woman_redhair_720p.mp4",
    "d6": "base/lp_d6_woman_eyeliner.mp4", "d14": "base/lp_d14_woman_smooth_skin.mp4",
    "d20": "base/lp_d20_young_man_outdoor.mp4", "s20": "base/lp_s20_woman_dark_hair_outdoor.mp4",
    "s29": "base/lp_s29_blonde_woman_sitting.mp4",
}
TRAIN = ("d0", "d12", "d6", "d14", "s20", "s29")
CALIBRATE = ("d20",)
TEST = ("d18", "d19", "d3", "s18")
TRAIN_SHARE = 0.75
SEGMENT = 48
"""Frames per clip when a shared clip is cut into clips (about 1.6-2 s)."""


def available() -> bool:
    return all((MEDIA / f).is_file() for f in PEOPLE.values())


def clip_path(person: str) -> Path:
    return MEDIA / PEOPLE[person]


def frames(person: str, *, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    for f in read_frames(clip_path(person), start=start, stop=stop):
        yield f.index, f.image


def faces(person: str, size: int = 128) -> FaceSet:
    """Every frame's faces of ``person``'s clip (cached)."""
    path = CACHE / f"{person}-{size}.npz"
    if path.is_file():
        d = np.load(path, allow_pickle=False)
        n = len(d["crops"])
        return FaceSet(d["crops"], d["landmarks"], np.array([person] * n, dtype=object),
                       np.array([PEOPLE[person]] * n, dtype=object), d["frames"])
    found = collect(frames(person), person, size=size, clip=PEOPLE[person], consecutive=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, crops=found.crops, landmarks=found.landmarks, frames=found.frames)
    tmp.replace(path)
    return found


def split(found: FaceSet, share: float = TRAIN_SHARE) -> tuple[FaceSet, FaceSet]:
    """(the first ``share`` of the clip's frames, the rest)."""
    cut = np.quantile(found.frames, share) if len(found) else 0
    return found.subset(found.frames < cut), found.subset(found.frames >= cut)


def segments(found: FaceSet, length: int = SEGMENT) -> list[np.ndarray]:
    """Indices into ``found`` per run of ``length`` frames (a shorter last run is kept if half as long)."""
    if not len(found):
        return []
    lo, hi = int(found.frames.min()), int(found.frames.max()) + 1
    out = []
    for s in range(lo, hi, length):
        idx = np.flatnonzero((found.frames >= s) & (found.frames < s + length))
        if len(idx) and (s + length <= hi or hi - s >= length // 2):
            out.append(idx)
    return out


def swapped(src: str, dst: str, size: int = 128, *, stride: int = 1) -> FaceSet:
    """``dst``'s faces (every ``stride``th frame) each with its doppel-swapped twin: ``src`` swapped in by the
    ``cpu``-preset model of ``detect_models.py``, merged with merge's own stages and no watermark, the merge's
    colour transfer and blend changing every ``SEGMENT`` frames. Cached like :func:`faces`."""
    import detect_fakes as fakes
    import detect_models as models
    from doppel.detect.faces import FaceFinder, crop_face, largest
    from doppel.detect.variants import BLEND_MODES, COLOURS
    from doppel.merge.composite import TemporalState
    from doppel.merge.settings import MergeSettings
    from doppel.train.swapper import load_swapper

    path = CACHE / f"{dst}-swapped-{src}-{size}.npz"
    if path.is_file():
        d = np.load(path, allow_pickle=False)
        n = len(d["crops"])
        return FaceSet(d["crops"], d["landmarks"], np.array([dst] * n, dtype=object),
                       np.array([PEOPLE[dst]] * n, dtype=object), d["frames"], d["swaps"])
    folder = models.model_dir(src, dst)
    if not (folder / "model.safetensors").is_file():
        raise FileNotFoundError(f"no swap model {folder}: run bench/detect_models.py {src}-{dst}")
    swapper = load_swapper(folder, runtime="torch")
    finder = FaceFinder(detect_every=5)
    state = TemporalState()
    crops, swaps, marks, where = [], [], [], []
    # frame by frame (detect_fakes.doppel holds a whole clip: long clips do not fit in memory)
    for index, frame in frames(dst):
        found = finder.step(index, frame)
        if not found:
            state.reset()
        if index % stride or not found:
            continue
        seg = index // SEGMENT
        settings = MergeSettings(colour=COLOURS[seg % len(COLOURS)], blend=BLEND_MODES[int(seg % 5 == 4)])
        lm = largest(found).landmarks
        merged = fakes.doppel_frame(frame, lm, swapper, settings, state)
        real, _, lm_crop = crop_face(frame, lm, size, "whole")
        crops.append(real)
        swaps.append(crop_face(merged, lm, size, "whole")[0])
        marks.append(lm_crop)
        where.append(index)
    n = len(crops)
    out = FaceSet(np.array(crops, np.uint8).reshape(n, size, size, 3), np.array(marks, np.float32).reshape(n, 68, 2),
                  np.array([dst] * n, dtype=object), np.array([PEOPLE[dst]] * n, dtype=object),
                  np.array(where, np.int64), np.array(swaps, np.uint8).reshape(n, size, size, 3))
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, crops=out.crops, landmarks=out.landmarks, frames=out.frames, swaps=out.swaps)
    tmp.replace(path)
    return out
