"""Training images/s of the cpu preset under runtime switches, one thread, on the cached workspace.

    python research/throughput.py [steps]

Each variant trains a fresh model for ``steps`` steps (after a 10-step warm-up run that is not
timed, so torch.compile's compile time is reported apart) on d18 -> d19 faces.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

VARIANTS = {
    "default (channels_last)": {},
    "contiguous": {"channels_last": False},
    "compile": {"compile": True},
    "batch16": {"batch": 16},
}


def main() -> None:
    import quality_lab
    from doppel.store import Workspace
    from doppel.train.config import PRESETS, train_config
    from doppel.train.loop import RunSpec
    from doppel.workflow.train import train

    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    out = {}
    p = PRESETS["cpu"]
    for name, over in VARIANTS.items():
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copytree(quality_lab.cached_workspace(), Path(tmp) / "ws")
            with Workspace.open(Path(tmp) / "ws") as ws:
                tc = train_config(**{**p.train_defaults(), "workers": 0, "preview_minutes": 99,
                                     "checkpoint_minutes": 99, **over})
                t = time.perf_counter()
                train(ws, RunSpec(name="w", model=p.model, train=tc, src=("d18",), dst=("d19",), iters=10))
                warm = time.perf_counter() - t
                r = train(ws, RunSpec(name="w", model=p.model, train=tc, src=("d18",), dst=("d19",),
                                      iters=10 + steps))
                out[name] = {"images_per_s": round(r.images_per_s, 2), "warmup_s": round(warm, 1),
                             "precision": r.precision}
                print(name, out[name], flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
