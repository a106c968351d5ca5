#!/usr/bin/env bash
# The demo (creates .venv on first use). Writes PNG files to out/ (or the folder given).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/env.sh"
cd "$ROOT"
exec python -m samples.demo --out "${1:-out}"
