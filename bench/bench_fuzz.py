"""Fuzzing, the long run: ``tests/test_fuzz.py`` and ``tests/test_review_fuzz.py`` with many more examples.

The same property tests CI runs briefly (40 examples each; the review API 12 per operation) run here
with ``DOPPEL_FUZZ=long`` (2,000 examples each; 300 per API operation). Anything they find is a crash:
a traceback or a server error instead of one of doppel's own errors. Each finding becomes a regular
test beside the code it broke. Target: no failure. ``--quick``: the short CI profile.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FILES = ["tests/test_fuzz.py", "tests/test_review_fuzz.py"]


def run(quick: bool) -> dict[str, Any]:
    env = {**os.environ, "DOPPEL_FUZZ": "ci" if quick else "long"}
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *FILES], cwd=ROOT,
                          env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    tail = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-300:]
    counts = {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|error)", tail)}
    failed = [line for line in done.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    profile = "ci" if quick else "long"
    return {"target": "no crash: only doppel's one-line errors, no server error, on every generated input",
            "passed": done.returncode == 0, "profile": profile, "seconds": round(seconds, 1), "counts": counts,
            "failures": failed,
            "headline": f"{profile} profile: {counts.get('passed', 0)} property tests passed, "
                        f"{counts.get('failed', 0)} failed, in {seconds / 60:.1f} min"}


if __name__ == "__main__":
    print(run("--quick" in sys.argv))
