#!/usr/bin/env bash
# Installs Meta's Immersive Web Emulation Runtime (IWER, npm package `iwer`) for the WebXR browser
# tests (tests/test_web_webxr.py) into the git-ignored folder .cache/iwer/ with npm, from the npm
# registry only. Installs Node.js/npm with apt-get first when they are missing and we are root.
# Quiet; safe to run again (does nothing when the pinned version is there).
# Exit status: 0 installed or already there; 1 installation failed; 2 npm missing and not root.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION="2.5.0"
dest=".cache/iwer"
module="$dest/node_modules/iwer/build/iwer.module.js"
if [[ -f "$module" ]] && grep -q "\"version\": \"$VERSION\"" "$dest/node_modules/iwer/package.json" 2>/dev/null; then
  exit 0
fi
log="${TMPDIR:-/tmp}/install_iwer.$$.log"
if ! command -v npm >/dev/null 2>&1; then
  if [[ "$(id -u)" != "0" ]] || ! command -v apt-get >/dev/null 2>&1; then
    echo "[iwer] npm is missing; install it with: sudo apt-get install -y npm   (the WebXR browser tests skip)" >&2
    exit 2
  fi
  echo "[iwer] installing nodejs and npm with apt-get" >&2
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm; } >"$log" 2>&1; then
    tail -n 30 "$log" >&2; echo "[iwer] apt-get failed; full log: $log" >&2; exit 1
  fi
fi
mkdir -p "$dest"
[[ -f "$dest/package.json" ]] || echo '{"name": "iwer-for-tests", "private": true}' > "$dest/package.json"
echo "[iwer] npm install iwer@$VERSION into $dest" >&2
if ! (cd "$dest" && npm install --no-audit --no-fund --no-save --loglevel=error "iwer@$VERSION") >"$log" 2>&1; then
  tail -n 30 "$log" >&2; echo "[iwer] npm install failed; full log: $log" >&2; exit 1
fi
rm -f "$log"
