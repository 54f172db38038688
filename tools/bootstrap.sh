#!/usr/bin/env bash
# Shared by run_server.sh and run_tests.sh: make sure .venv exists and holds this project
# (with the extras named in $1, e.g. "test"), reinstalling when setup.cfg changes.
# Source it; it sets VENV and puts .venv/bin first on PATH.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
EXTRAS="${1:-}"
PY="${PYTHON:-python3}"
spec="$ROOT"
[[ -n "$EXTRAS" ]] && spec="$ROOT[$EXTRAS]"
stamp="$VENV/.installed-$(cat "$ROOT/setup.cfg" "$ROOT/pyproject.toml" | sha1sum | cut -c1-12)-${EXTRAS:-base}"
if [[ ! -x "$VENV/bin/python" ]]; then
  echo "[bootstrap] creating $VENV" >&2
  "$PY" -m venv "$VENV"
fi
if [[ ! -f "$stamp" ]]; then
  echo "[bootstrap] installing the project into $VENV (extras: ${EXTRAS:-none})" >&2
  "$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
  "$VENV/bin/python" -m pip install --quiet -e "$spec" >&2
  touch "$stamp"
fi
export PATH="$VENV/bin:$PATH"
export VIRTUAL_ENV="$VENV"
# Offscreen rendering for the simulator's cameras: EGL (Mesa) by default, osmesa as fallback.
export MUJOCO_GL="${MUJOCO_GL:-egl}"
