#!/usr/bin/env bash
# Run the default test suite (creates .venv on first use).
# Extra arguments go to pytest, e.g.  bash scripts/test.sh -k compute_ap
#                                     bash scripts/test.sh -m slow   (the long end-to-end runs)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/env.sh"
cd "$ROOT"
# Two xdist workers, each taking whole test files: the suite spends most of its time in
# single-threaded Python (building and tracing graphs), so on 2 cores two workers halve
# its wall time. MRCNN_TEST_WORKERS=0 runs it in one process; -n on the command line wins.
workers="${MRCNN_TEST_WORKERS:-2}"
args=()
if [ "$workers" != "0" ] && ! printf '%s\n' "$@" | grep -qE '^(-n|--numprocesses|no:xdist|-pno:xdist)'; then
    # (--no-loadscope-reorder: xdist would otherwise hand out the files with the most
    # tests first, ignoring the longest-first order of tests/conftest.py)
    args=(-n "$workers" --dist loadfile --no-loadscope-reorder)
fi
exec python -m pytest ${args[@]+"${args[@]}"} "$@"
