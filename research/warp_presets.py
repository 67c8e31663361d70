"""How the warp error reads known degradations of real footage, with DIS's medium and fast presets.

    python research/warp_presets.py   (writes research/warp_presets.json)

The first 80 frames of d18 and d3 against three altered copies of themselves: a 1.5 px blur, static
noise (sigma 4 grey levels, new every frame) and a 1 px horizontal jitter (random per frame), inside
the face (:func:`doppel.eval.metrics.measure_mask` of the cached workspace's landmarks). Reported per
preset: the plain ratio, its p95 and the detail-normalised ratio, and the CPU milliseconds per frame
of the three together. ``doppel eval`` uses the medium preset.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "bench"))
FRAMES = 80


def main() -> None:
    import quality_lab
    from doppel.eval.metrics import measure_mask
    from doppel.eval.temporal import WarpErrorMeter
    from doppel.io.video import read_frames
    from doppel.store import Workspace

    cv2.setNumThreads(1)
    presets = {"medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST}
    result: dict[str, dict[str, dict[str, float]]] = {}
    for name in ("d18", "d3"):
        with Workspace.open(quality_lab.cached_workspace()) as ws:
            lms = {f.frame_index: f.landmarks for f in ws.faces.of(name, include_excluded=True)}
        clip = read_frames(quality_lab.MEDIA / quality_lab.CLIPS[name])
        frames = [f.image for _, f in zip(range(FRAMES), clip, strict=False)]
        rng = np.random.default_rng(0)
        variants = {"blur 1.5 px": [cv2.GaussianBlur(f, (0, 0), 1.5) for f in frames],
                    "noise 4": [np.clip(f + rng.normal(0, 4, f.shape), 0, 255).astype(np.uint8) for f in frames],
                    "jitter 1 px": [np.roll(f, int(rng.integers(-1, 2)), axis=1) for f in frames]}
        masks = [measure_mask(lms[i], f.shape) if i in lms else None for i, f in enumerate(frames)]
        for preset, flag in presets.items():
            row: dict[str, float] = {}
            t = time.process_time()
            for label, copy in variants.items():
                meter = WarpErrorMeter(flag)
                for a, b, k in zip(frames, copy, masks, strict=True):
                    meter.update(a, b, k)
                r = meter.result
                row |= {f"{label}: ratio": round(r.ratio or 0, 3), f"{label}: p95": round(r.p95 or 0, 3),
                        f"{label}: normalised": round(r.normalised_ratio or 0, 3)}
            row["cpu ms per frame"] = round(1000 * (time.process_time() - t) / (len(variants) * len(frames)), 1)
            result[f"{name} {preset}"] = row
            print(name, preset, row, flush=True)
    (HERE / "warp_presets.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
