"""Score detector recipes on the detect lab's sets and write ``research/results/detect-lab.json``.

    python research/detect_table.py tmp/det/A-base tmp/det/B-pair-patch3 ...   # folders from train_detector.py

Each folder is scored on the ``dev`` set (d12, d20) only when none of its training people is in it, and on
the ``test`` set (the benchmark's people) always. Prints one line per recipe and set.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import detect_lab as lab

OUT = Path(__file__).resolve().parent / "results" / "detect-lab.json"


def main(folders: list[str]) -> int:
    table = json.loads(OUT.read_text()) if OUT.is_file() else {}
    for name in folders:
        folder = Path(name)
        info = json.loads((folder / "train.json").read_text()) if (folder / "train.json").is_file() else {}
        people = set(info.get("train_people", []))
        entry = {"recipe": info.get("recipe"), "config": info.get("config"), "train_people": sorted(people),
                 "swap_models": info.get("swap_models", [])}
        for which in ("dev", "test"):
            if which == "dev" and people & set(lab.SETS["dev"]):
                continue
            rows = lab.evaluate(lab.detector_scorer(folder), which)
            entry[which] = rows
            print(f"{folder.name} {which}: " + ", ".join(f"{k} {v['auc']:.2f}" for k, v in rows.items()), flush=True)
        table[folder.name if folder.name != "weights" else "shipped"] = entry
    OUT.write_text(json.dumps(table, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
