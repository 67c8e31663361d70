#!/usr/bin/env bash
# Create .venv and install doppel into it with pip. Sourced by demo.sh and test.sh; safe to rerun.
# PyTorch: on a machine without an NVIDIA GPU we pin the CPU build (torch==2.13.0, which this
# kind of machine keeps on disk); with a GPU, pip resolves pyproject's range to a CUDA build.
# Override with DOPPEL_TORCH="torch==X.Y.Z" (or DOPPEL_TORCH=skip to keep what is installed).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${DOPPEL_VENV:-$root/.venv}"
python="${PYTHON:-python3}"
extras="${1:-}"

if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
"${pip[@]}" install --upgrade pip >/dev/null

torch_spec="${DOPPEL_TORCH:-}"
if [ -z "$torch_spec" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    torch_spec="torch>=2.2,<3"
  else
    torch_spec="torch==2.13.0"
  fi
fi
if [ "$torch_spec" != "skip" ]; then
  "${pip[@]}" install "$torch_spec"
fi
target="$root"
[ -n "$extras" ] && target="$root[$extras]"
"${pip[@]}" install -e "$target"
