"""The benchmark runner records each result row's own commit (issue 16, item 16)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _run_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("bench_run", BENCH / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_row_names_the_commit_it_measured() -> None:
    run = _run_module()
    results = {"date": "2026-01-01", "machine": run.machine(), "benchmarks": {
        "a": {"passed": True, "headline": "h1", "commit": "abc1234", "loadavg_before": [1], "loadavg_after": [1]},
        "b": {"passed": False, "headline": "h2", "commit": "def5678+dirty", "loadavg_before": [2],
              "loadavg_after": [2]}}}
    text = run._summary(results)
    assert "| abc1234 |" in text and "| def5678+dirty |" in text and "git " not in text.splitlines()[2]
    here = run.commit()
    assert here is None or len(here.split("+")[0]) >= 7
