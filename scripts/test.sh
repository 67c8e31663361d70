#!/usr/bin/env bash
# Fresh machine to test results in one command: set up .venv, then lint and run the test suite.
# Extra arguments go to pytest (e.g. `scripts/test.sh -m slow`).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh" test
cd "$root"
venv="${DOPPEL_VENV:-$root/.venv}"
"$venv/bin/ruff" check .
"$venv/bin/python" -m pytest "$@"
