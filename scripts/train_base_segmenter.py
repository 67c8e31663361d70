"""Train doppel's base face segmenter (the one shipped in ``src/doppel/segment/weights/``).

Recipe (see the data card beside the weights): every face of the training identities of a
workspace made by ``doppel extract`` (one identity per clip), each re-cut in the segmenter's
framing and labelled from its landmarks (``doppel.segment.labels``); synthetic occluders of the
training families only (``doppel.segment.synth.TRAIN_KINDS``); identities that wear real glasses
(``--glasses``) have their eye band left unknown. Held-out identities are not read at all.

    python scripts/train_base_segmenter.py WS --identities d0 d3 d19 --glasses d19 --minutes 30
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import time
from pathlib import Path

import numpy as np

from doppel import __version__
from doppel.ops.face import mouth_openness
from doppel.segment import store
from doppel.segment.train import SegTrainConfig, train
from doppel.segment.unet import UNetConfig
from doppel.store import Workspace
from doppel.workflow.segment import face_samples, patches_of

OPEN_MOUTH = 0.25  # inner-lip gap over the eye distance from which a mouth counts as open


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workspace", type=Path)
    parser.add_argument("--identities", nargs="+", required=True)
    parser.add_argument("--glasses", nargs="*", default=[], help="identities that wear real glasses")
    parser.add_argument("--held-out", nargs="*", default=[], help="recorded in train.json; never read")
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--every", type=int, default=2, help="use every Nth face of each identity")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--out", type=Path, default=store.base_dir())
    parser.add_argument("--init", type=Path, default=None, help="continue from this segmenter folder")
    parser.add_argument("--open-mouths", type=int, default=1,
                        help="draw faces with an open mouth this many times as often (an open mouth is face)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    config = UNetConfig(size=args.size)
    started = time.perf_counter()
    samples, counts = [], {}
    with Workspace.open(args.workspace) as ws:
        for name in args.identities:
            faces = ws.faces.of(name)[:: args.every]
            mine = face_samples(faces, config, glasses_unknown=name in args.glasses)
            counts[name] = len(mine)
            samples.extend(mine)
    if args.open_mouths > 1:
        open_ = [s for s in samples if float(mouth_openness(s.landmarks)) > OPEN_MOUTH]
        samples += open_ * (args.open_mouths - 1)
        counts["open_mouth_faces"] = len(open_)
    print(f"{len(samples)} samples from {counts} in {time.perf_counter() - started:.0f} s", flush=True)
    rng = np.random.default_rng(args.seed)
    model = store.copy_of(store.load(args.init)) if args.init else store.fresh(config, args.seed)
    cfg = SegTrainConfig(minutes=args.minutes, batch=args.batch, lr=args.lr, seed=args.seed, threads=args.threads)
    meta = {"doppel_version": __version__, "trained_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "recipe": "scripts/train_base_segmenter.py", "identities": counts, "glasses_identities": args.glasses,
            "held_out_identities": args.held_out, "every": args.every, "open_mouths": args.open_mouths,
            "config": cfg.model_dump(),
            "continued_from": store.read_train(args.init) if args.init else None}

    def snapshot(step: int, loss: float) -> None:
        if step % 200 == 0:
            store.save(args.out, model, {**meta, "snapshot_step": step, "loss": loss})

    report = train(model, samples, cfg, patches=patches_of(samples, rng), on_log=snapshot)
    store.save(args.out, model, {**meta, "report": report.to_dict()})
    print(f"trained {report.steps} steps in {report.seconds:.0f} s ({report.images_per_second:.1f} images/s), "
          f"final loss {report.final_loss:.4f}; saved {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
