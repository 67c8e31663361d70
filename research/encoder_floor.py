"""What the video encoder alone does to the warp error: a shared clip against its own H.264 re-encode.

    python research/encoder_floor.py [CLIP_NAME [CRF]]   (default d18 at CRF 18; writes
    research/encoder_floor.json, or encoder_floor-CLIP-crfCRF.json for another clip or CRF)

The original frames are re-encoded (CRF 18, preset veryfast, as a merge writes them) and compared with
themselves by :mod:`doppel.eval.temporal` inside the face (:func:`doppel.eval.metrics.measure_mask` of
the cached workspace's landmarks): whatever ratio this gives, a merge pays before its face is measured.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import av
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "bench"))


def main() -> None:
    import quality_lab
    from doppel.eval.metrics import measure_mask
    from doppel.eval.temporal import WarpErrorMeter
    from doppel.io.video import probe, read_frames
    from doppel.store import Workspace

    name = sys.argv[1] if len(sys.argv) > 1 else "d18"
    crf = int(sys.argv[2]) if len(sys.argv) > 2 else 18
    src = quality_lab.MEDIA / quality_lab.CLIPS[name]
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(quality_lab.cached_workspace(), Path(tmp) / "ws")
        with Workspace.open(Path(tmp) / "ws") as ws:
            lms = {f.frame_index: f.landmarks_smooth for f in ws.faces.of(name, include_excluded=True)}
        info, out = probe(src), Path(tmp) / "re.mp4"
        with av.open(str(out), "w") as c:
            s = c.add_stream("libx264", rate=25)
            s.width, s.height, s.pix_fmt = info.width, info.height, "yuv420p"
            s.options = {"crf": str(crf), "preset": "veryfast"}
            for f in read_frames(src):
                for p in s.encode(av.VideoFrame.from_ndarray(f.image, format="rgb24")):
                    c.mux(p)
            for p in s.encode():
                c.mux(p)
        out_bytes = out.stat().st_size
        meter = WarpErrorMeter()
        for a, b in zip(read_frames(src), read_frames(out), strict=True):
            lm = lms.get(a.index)
            meter.update(a.image, b.image, None if lm is None else measure_mask(lm, a.image.shape))
    r = meter.result
    result = {"clip": name, "crf": crf, "bytes": out_bytes, "pairs": r.pairs, "ratio": r.ratio, "p95": r.p95,
              "p95_raw": r.p95_raw,
              "normalised_ratio": r.normalised_ratio, "original_error_median": float(np.median(r.original))}
    name_out = "encoder_floor.json" if (name, crf) == ("d18", 18) else f"encoder_floor-{name}-crf{crf}.json"
    (HERE / name_out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
