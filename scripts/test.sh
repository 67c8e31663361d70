#!/usr/bin/env bash
# Fresh machine to test results in one command: set up .venv, then lint, type-check and run the test
# suite: the fast tests, then the slow ones (real footage, training, the demo end to end, batches on a
# loopback Ray cluster the tests start and stop; a few minutes on 2 cores). Installs the test and
# cluster (Ray) extras. Extra arguments go to one pytest run instead (e.g. `scripts/test.sh -x tests/test_cli.py`).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh" test,cluster
cd "$root"
venv="${DOPPEL_VENV:-$root/.venv}"
"$venv/bin/ruff" check .
"$venv/bin/mypy"
if [ "$#" -gt 0 ]; then
  exec "$venv/bin/python" -m pytest "$@"
fi
"$venv/bin/python" -m pytest
"$venv/bin/python" -m pytest -m slow
