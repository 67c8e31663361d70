"""Run doppel's benchmarks: ``python bench/run.py [--quick] [NAME ...]``.

Each benchmark is a module ``bench/bench_<name>.py`` with ``run(quick: bool) -> dict`` returning
its measurements, including ``target`` (what it must reach, in words) and ``passed`` (bool).
Results are merged into ``bench/results/<date>-<machine>.json`` (one key per benchmark) and
summarised in the ``.md`` beside it. The machine is shared, so the load average is recorded
before and after every benchmark: compare runs made under similar load, and quote medians.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"


def available() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in BENCH.glob("bench_*.py"))


def _load(name: str) -> Any:
    path = BENCH / f"bench_{name}.py"
    if not path.is_file():
        raise SystemExit(f"bench/run.py: no benchmark {name!r} ({path} missing); known: {', '.join(available())}")
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def machine() -> dict[str, Any]:
    return {"host": socket.gethostname(), "platform": platform.platform(), "python": platform.python_version(),
            "cpus": os.cpu_count()}


def commit() -> str | None:
    """The commit the code under test is at, with ``+dirty`` when the tree has uncommitted changes."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=BENCH, capture_output=True, text=True)
    if head.returncode != 0:
        return None
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=BENCH,
                           capture_output=True, text=True).stdout.strip()
    return head.stdout.strip() + ("+dirty" if dirty else "")


def _summary(results: dict[str, Any]) -> str:
    lines = [f"# Benchmarks {results['date']} on {results['machine']['host']}", "",
             f"{results['machine']['cpus']} CPUs, {results['machine']['platform']}; each row names the commit "
             "it measured", "", "| benchmark | passed | target | headline | load before/after | commit | when |",
             "|---|---|---|---|---|---|---|"]
    for name, r in sorted(results["benchmarks"].items()):
        load = f"{r.get('loadavg_before', ['?'])[0]} / {r.get('loadavg_after', ['?'])[0]}"
        lines.append(f"| {name} | {'yes' if r.get('passed') else 'NO'} | {r.get('target', '')} | "
                     f"{r.get('headline', '')} | {load} | {r.get('commit', '?')} | {r.get('finished_at', '')} |")
    for name, r in sorted(results["benchmarks"].items()):
        if r.get("table"):
            lines += ["", f"## {name}", "", r["table"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {', '.join(available())})")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and inputs (a smoke run)")
    parser.add_argument("--exclude", action="append", default=[], metavar="NAME",
                        help="leave this benchmark out (repeatable), e.g. --exclude quality")
    args = parser.parse_args(argv)
    names = [n for n in (args.names or available()) if n not in args.exclude]
    modules = {name: _load(name) for name in names}  # fail on a bad name before running anything
    date = dt.date.today().isoformat()
    host = re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname())
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{date}-{host}.json"
    ok = True
    for name, module in modules.items():
        print(f"== {name}{' (quick)' if args.quick else ''}", flush=True)
        before = [round(x, 2) for x in os.getloadavg()]
        measured = commit()  # the code this run loaded (HEAD may move while it runs)
        start = time.perf_counter()
        try:
            result = module.run(args.quick)
        except Exception as exc:  # one broken benchmark must not lose the others' results
            result = {"passed": False, "target": "", "headline": f"error: {type(exc).__name__}: {exc}"[:300]}
        result.update(quick=args.quick, seconds=round(time.perf_counter() - start, 1), loadavg_before=before,
                      commit=measured,
                      loadavg_after=[round(x, 2) for x in os.getloadavg()],
                      finished_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
        ok &= bool(result.get("passed"))
        print(f"   {'PASSED' if result.get('passed') else 'FAILED'}: {result.get('headline', '')}", flush=True)
        save(out, name, result, date)
    print(f"results: {out} and {out.with_suffix('.md')}")
    return 0 if ok else 1


def save(out: Path, name: str, result: dict[str, Any], date: str) -> None:
    """Merge one benchmark's result into ``out`` as it is on disk now (another run may have added its own
    since this one started), then rewrite the summary beside it."""
    results: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {"benchmarks": {}}
    results.update(date=date, machine=machine())
    results.setdefault("benchmarks", {})[name] = result
    tmp = out.with_suffix(f".json.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(results, indent=2, sort_keys=True, default=str) + "\n")
    tmp.replace(out)
    out.with_suffix(".md").write_text(_summary(results))


if __name__ == "__main__":
    sys.exit(main())
