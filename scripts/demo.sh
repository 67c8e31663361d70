#!/usr/bin/env bash
# Fresh machine to a result in one command: set up .venv, then run `doppel demo`, the whole job end
# to end on built-in public-domain portraits (two synthetic clips, consent records, extraction,
# training for a fixed budget, merge, verify, eval). Everything lands in ./demo-out (or
# $DOPPEL_DEMO_OUT): output.mp4, contact_sheet.png, eval.json, verify.json, summary.json.
# About 12 minutes on 2 CPU cores after installation: training takes --minutes (default 10), the
# rest about a minute; it leaves ~440 MB behind (see the README).
# Extra arguments go to `doppel demo` (e.g. `scripts/demo.sh --minutes 3` for a quick look).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
venv="${DOPPEL_VENV:-$root/.venv}"
out="${DOPPEL_DEMO_OUT:-$PWD/demo-out}"
"$venv/bin/doppel" demo --out "$out" "$@"
