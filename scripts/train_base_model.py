"""Pretrain doppel's shipped base face model and write it into the package (``src/doppel/train/bases/NAME/``).

Recipe (see the data card beside the weights): a workspace where ``doppel extract`` made one identity per
clip, each with a consent record; ``doppel train --pretrain`` on the named identities with the preset's
capacity and settings (resumable: rerun the same command to continue it); then the EMA weights are
exported in float16 with a ``train.json`` that names every identity, the held-out ones, steps and time.

    python scripts/train_base_model.py WS --faces d0 d3 d12 s18 d6 d14 d20 s20 s29 --held-out d18 d19 \\
        --minutes 70
    python scripts/train_base_model.py WS --faces ... --export-only   # export what WS/models/base-cpu has
    python scripts/train_base_model.py WS --faces ... --people-only   # only (re)write the base's people.json

``people.json`` (each person's mean identity embedding, from WS's faces) is what lets ``doppel train`` warn
when a pair run's source or destination is someone the base already learned.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from pathlib import Path

import torch

from doppel import __version__
from doppel.store import Workspace
from doppel.train import bases, checkpoint
from doppel.train.config import PRESETS, train_config
from doppel.train.loop import RunSpec
from doppel.workflow.train import train

ROOT = Path(__file__).resolve().parents[1]


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workspace", type=Path)
    parser.add_argument("--faces", nargs="+", required=True, help="identities to pretrain on")
    parser.add_argument("--held-out", nargs="*", default=[], help="recorded in train.json; never read")
    parser.add_argument("--preset", default="cpu", choices=sorted(PRESETS))
    parser.add_argument("--minutes", type=float, default=70.0, help="wall-clock budget of this invocation")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--model", default=None, help="model name in WS (default base-PRESET)")
    parser.add_argument("--out", type=Path, default=None, help="default: the package's bases/PRESET")
    parser.add_argument("--export-only", action="store_true", help="do not train; export the model as it is")
    parser.add_argument("--people-only", action="store_true",
                        help="only write the base's people.json from WS's faces of --faces (no training, no export)")
    args = parser.parse_args(argv)
    if set(args.faces) & set(args.held_out):
        parser.error(f"identities both trained on and held out: {sorted(set(args.faces) & set(args.held_out))}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    name = args.model or f"base-{args.preset}"
    preset = PRESETS[args.preset]
    out = args.out or bases.BASES_DIR / args.preset
    with Workspace.open(args.workspace) as ws:
        if args.people_only:
            path = bases.write_people(out, {f: ws.faces.of(f) for f in args.faces})
            print(f"wrote {path}")
            return 0
        counts = {f: len(ws.faces.of(f)) for f in args.faces}
        if not args.export_only:
            spec = RunSpec(name=name, model=preset.model, train=train_config(**preset.train_defaults()),
                           src=tuple(args.faces), dst=tuple(args.faces), pretrain=True, preset=args.preset,
                           minutes=args.minutes)
            result = train(ws, spec)
            logging.info("%s at step %d (%.1f images/s)", result.status, result.step, result.images_per_s)
        mdir = ws.models_dir() / name
    metrics = (mdir / "metrics.csv").read_text().splitlines()
    last = metrics[-1].split(",") if len(metrics) > 1 else []
    head = metrics[0].split(",") if metrics else []
    row = dict(zip(head, last, strict=False))
    state = checkpoint.load_latest(mdir)
    steps = state.step if state is not None else 0
    seconds = float(state.meta.get("elapsed_s", 0.0)) if state is not None else 0.0
    batch = preset.batch
    extra = {"steps": steps, "seconds": round(seconds), "images": steps * batch * 2, "threads": args.threads,
             "held_out": args.held_out, "commit": _commit(), "doppel_version": __version__,
             "faces_per_identity": counts, "last_metrics": row}
    bases.export(mdir, out, extra)
    size = (out / checkpoint.WEIGHTS).stat().st_size
    print(f"base model {out}: {steps} steps, {seconds / 60:.0f} min, {size / 2**20:.1f} MiB; "
          f"update {out / 'DATA_CARD.md'} by hand")
    return 0


if __name__ == "__main__":
    sys.exit(main())
