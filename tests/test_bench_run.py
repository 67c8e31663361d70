"""The benchmark runner records each result row's own commit (issue 16, item 16)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

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


@pytest.mark.parametrize("module", sorted(p.stem for p in BENCH.glob("*.py")))
def test_every_benchmark_module_imports(module: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A benchmark runs rarely: a stale import (a class that moved) must fail here, not an hour into a run."""
    monkeypatch.syspath_prepend(str(BENCH))
    spec = importlib.util.spec_from_file_location(f"_bench_{module}", BENCH / f"{module}.py")
    assert spec is not None and spec.loader is not None
    module_object = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module_object)  # dataclasses look their module up there
    spec.loader.exec_module(module_object)


def test_runs_at_the_same_time_keep_each_others_results(tmp_path: Path) -> None:
    """Two runs started before either finished: the second to finish must not drop the first's result."""
    run = _run_module()
    out = tmp_path / "2026-01-01-host.json"
    first = {"passed": True, "headline": "first", "commit": "abc1234"}
    second = {"passed": False, "headline": "second", "commit": "abc1234"}
    run.save(out, "watermark", first, "2026-01-01")
    run.save(out, "detect", second, "2026-01-01")
    saved = json.loads(out.read_text())
    assert saved["benchmarks"] == {"watermark": first, "detect": second}
    summary = out.with_suffix(".md").read_text()
    assert "| first |" in summary and "| second |" in summary
    run.save(out, "watermark", second, "2026-01-01")   # a rerun replaces only its own entry
    assert json.loads(out.read_text())["benchmarks"]["watermark"] == second
    assert not list(tmp_path.glob("*.tmp"))
