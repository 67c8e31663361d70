#!/usr/bin/env bash
# Fresh machine to a result in one command: set up .venv, make the built-in demo clip (a
# public-domain portrait moved with synthetic head motion), create a workspace in ./demo-out and
# extract the person's faces from the clip, printing the JSON report.
# (Until `doppel demo` exists, the demo is extraction on built-in media.)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
venv="${DOPPEL_VENV:-$root/.venv}"
out="${DOPPEL_DEMO_OUT:-$PWD/demo-out}"
mkdir -p "$out"
clip="$out/demo-astronaut.mp4"
"$venv/bin/python" -m doppel.demo.media "$clip" --portrait astronaut --seconds 4
rm -rf "$out/workspace"
"$venv/bin/doppel" init "$out/workspace"
"$venv/bin/doppel" extract "$out/workspace" --identity astronaut "$clip" --json | tee "$out/extract-report.json"
"$venv/bin/doppel" faceset stats "$out/workspace" astronaut --plot "$out/astronaut-coverage.png"
echo "demo output: $out (aligned faces in $out/workspace/facesets/astronaut/)"
