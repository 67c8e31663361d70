#!/bin/bash
# Run the lab commands in a file one after another (a chain whose later runs reuse earlier models).
# usage: research/chain.sh FILE  (run two chains side by side at most)
cd "$(dirname "$0")/.." || exit 1
mkdir -p research/logs
grep -v '^\s*#' "$1" | grep -v '^\s*$' | while read -r line; do
  log="research/logs/$(echo "$line" | tr ' /' '__').log"
  nice -n 5 "${PYTHON:-python}" bench/quality_lab.py $line > "$log" 2>&1
  echo "$(date +%H:%M) done ($?): $line" >> research/logs/queue.log
done
