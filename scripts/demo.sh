#!/usr/bin/env bash
# The demo (creates .venv on first use): draws datasets, trains on shapes for a few
# minutes on the CPU, detects, and writes PNG files to out/ (or the folder given).
# Extra arguments go to samples/demo.py, e.g.  bash scripts/demo.sh out --train-minutes 10
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/env.sh"
OUT="${1:-out}"
shift || true
# the output folder is relative to where the command was typed, not to the repository
case "$OUT" in /*) ;; *) OUT="$PWD/$OUT" ;; esac
cd "$ROOT"
exec python -m samples.demo --out "$OUT" "$@"
