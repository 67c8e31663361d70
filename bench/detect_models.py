"""Train the doppel swap models ``bench_detect`` makes its fakes with (not a benchmark of its own).

Each model is the ``cpu`` preset trained as ``doppel train --preset cpu`` trains it, for a fixed number
of steps (a CPU-time budget: the machine is shared, so wall-clock minutes would buy a different model
each run), on the held-out people only: the detector never sees these people. Models land in
``MODELS/<src>-<dst>`` (default ``tmp/detect-bench/models``, git-ignored) and are reused by later runs.

    nice -n 5 python bench/detect_models.py d18-d19 d3-s18
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "src"))
MEDIA = BENCH.parents[1] / "shared" / "media"
MODELS = Path(os.environ.get("DOPPEL_DETECT_MODELS", BENCH.parent / "tmp" / "detect-bench" / "models"))
CLIPS = {"d3": "lp_d3_woman_expressions.mp4", "d18": "lp_d18_man_neutral_studio.mp4",
         "d19": "lp_d19_man_glasses_studio.mp4", "s18": "lp_s18_woman_redhair_720p.mp4",
         # the detector's training people: their swaps teach it what doppel's renders look like
         "d0": "lp_d0_asian_man_greenscreen.mp4", "d12": "lp_d12_man_talking_gesturing.mp4",
         "d6": "base/lp_d6_woman_eyeliner.mp4", "d14": "base/lp_d14_woman_smooth_skin.mp4",
         "s20": "base/lp_s20_woman_dark_hair_outdoor.mp4", "s29": "base/lp_s29_blonde_woman_sitting.mp4"}
CPU_ITERS = 600
"""Steps of the ``cpu`` preset. The quality benchmark's 30 minutes bought 2,098 steps on a quiet machine in
bf16; this machine trains in fp32 at about 0.3 steps/s under its usual load, so 600 steps (about 9 of those
minutes) is what fits. Fewer steps make softer swaps, which are easier to detect: say so with the results."""


def model_dir(src: str, dst: str, iters: int = CPU_ITERS) -> Path:
    return MODELS / (f"{src}-{dst}" if iters == CPU_ITERS else f"{src}-{dst}-{iters}")


def train_pair(src: str, dst: str, iters: int) -> Path:
    from doppel.provenance.consent import add_consent
    from doppel.train.config import PRESETS, train_config
    from doppel.train.loop import RunSpec
    from doppel.workflow.extract import extract
    from doppel.workflow.train import detail_plan, train
    from doppel.workflow.workspace import create_workspace

    out = model_dir(src, dst, iters)
    if (out / "model.safetensors").is_file():
        return out
    p = PRESETS["cpu"]
    tcfg = train_config(**p.train_defaults(), workers=0, preview_minutes=30.0, checkpoint_minutes=15.0)
    with tempfile.TemporaryDirectory(prefix="doppel-detect-models-") as tmp, create_workspace(Path(tmp) / "ws") as ws:
        add_consent(ws, src, f"person in the shared clip {CLIPS[src]}", "doppel detector benchmark (testing only)",
                    "public-domain-demo")
        extract(ws, src, MEDIA / CLIPS[src])
        extract(ws, dst, MEDIA / CLIPS[dst])
        t = time.process_time()
        result = train(ws, RunSpec(name="m", model=p.model, train=tcfg, src=(src,), dst=(dst,), preset="cpu",
                                   iters=iters), detail=detail_plan("cpu"))
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(result.model_dir, out.with_suffix(".partial"), dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("checkpoints", "previews"))
        (out.with_suffix(".partial") / "bench.json").write_text(json.dumps(
            {"src": src, "dst": dst, "preset": "cpu", "steps": result.step, "cpu_seconds": time.process_time() - t,
             "seconds": result.seconds}, indent=2) + "\n")
        out.with_suffix(".partial").rename(out)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pairs", nargs="+", help="SRC-DST, e.g. d18-d19")
    parser.add_argument("--iters", type=int, default=CPU_ITERS)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    for pair in args.pairs:
        src, dst = pair.split("-", 1)
        print(f"{pair}: {train_pair(src, dst, args.iters)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
