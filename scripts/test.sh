#!/usr/bin/env bash
# Run the default test suite (creates .venv on first use).
# Extra arguments go to pytest, e.g.  bash scripts/test.sh -k compute_ap
#                                     bash scripts/test.sh -m slow   (the long end-to-end runs)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/env.sh"
cd "$ROOT"
exec python -m pytest "$@"
