#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment in .venv.
# Sourced by scripts/demo.sh and scripts/test.sh; safe to run by hand.
# Re-installs only when setup.py changed since the last install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MRCNN_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
STAMP="$VENV/.mrcnn-setup-stamp"
want="$(sha256sum "$ROOT/setup.py" | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ]; then
    echo "[env] creating virtual environment in $VENV"
    "$PY" -m venv "$VENV"
fi
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
    echo "[env] installing mrcnn and its dependencies (first run takes a minute or two)"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip setuptools wheel
    "$VENV/bin/python" -m pip install --quiet -e "$ROOT[dev]"
    echo "$want" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
export MPLBACKEND="${MPLBACKEND:-Agg}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
