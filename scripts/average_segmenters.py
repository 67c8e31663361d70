"""Average the weights of segmenters from one training run (each continuing the last) into one.

Averaging checkpoints along a trajectory ("model soup") steadied the base segmenter on people it never
saw: each run alone did well on one held-out person and worse on another; their mean did well on both
(``bench/results``, and the data card beside the weights).

    python scripts/average_segmenters.py OUT RUN1 RUN2 RUN3
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from doppel.segment import store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("runs", type=Path, nargs="+")
    args = parser.parse_args(argv)
    models = [store.load(f) for f in args.runs]
    if any(m.config != models[0].config for m in models):
        raise SystemExit("average_segmenters.py: the runs have different architectures")
    states = [m.state_dict() for m in models]
    mean = {k: sum(s[k].float() for s in states).div(len(states)).to(states[0][k].dtype) for k in states[0]}
    model = store.copy_of(models[0])
    model.load_state_dict(mean)
    metas = [store.read_train(f) for f in args.runs]
    dropped = ("weights_sha256", "continued_from", "snapshot_step", "loss")
    meta = {k: v for k, v in metas[-1].items() if k not in dropped}
    meta["recipe"] = ("scripts/train_base_segmenter.py run several times, each continuing the last; their weights "
                      "averaged by scripts/average_segmenters.py")
    meta["weight_average_of"] = [{"run": f.name, "steps": m.get("report", {}).get("steps"),
                                  "seconds": m.get("report", {}).get("seconds"), "lr": m.get("config", {}).get("lr"),
                                  "open_mouths": m.get("open_mouths", 1), "weights_sha256": m.get("weights_sha256")}
                                 for f, m in zip(args.runs, metas, strict=True)]
    store.save(args.out, model.eval(), meta)
    print(f"averaged {len(models)} runs into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
