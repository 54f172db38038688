#!/usr/bin/env bash
# Shared by run_server.sh and run_tests.sh: make sure .venv exists and holds this project with its
# test extras, reinstalling when setup.cfg or pyproject.toml change. Source it; it puts .venv/bin
# first on PATH. Installer output goes to .venv/bootstrap.log and is shown only on failure.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"
stamp="$VENV/.installed-$(cat "$ROOT/setup.cfg" "$ROOT/pyproject.toml" | sha1sum | cut -c1-12)"
if [[ ! -x "$VENV/bin/python" ]]; then
  echo "[bootstrap] creating $VENV" >&2
  "$PY" -m venv "$VENV"
fi
if [[ ! -f "$stamp" ]]; then
  echo "[bootstrap] installing the project and its dependencies into $VENV (first run: ~1 min)" >&2
  log="$VENV/bootstrap.log"
  if ! { "$VENV/bin/python" -m pip install --upgrade pip && "$VENV/bin/python" -m pip install -e "$ROOT[test,ray]"; } >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "[bootstrap] installation failed; full log: $log" >&2
    exit 1
  fi
  rm -f "$VENV"/.installed-*
  touch "$stamp"
fi
export PATH="$VENV/bin:$PATH"
export VIRTUAL_ENV="$VENV"
# Offscreen rendering for the simulator's cameras: EGL (Mesa) by default, osmesa as fallback.
export MUJOCO_GL="${MUJOCO_GL:-egl}"
