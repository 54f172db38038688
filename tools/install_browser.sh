#!/usr/bin/env bash
# Installs Debian's Chromium and its WebDriver (packages `chromium`, `chromium-driver`) for the
# browser tests (tests/test_web_*.py), from the system package manager only — never a browser
# download from anywhere else. Needs root (as in CI); otherwise it only says what to run.
# Quiet: apt output goes to a log shown on failure. Safe to run again (does nothing when present).
# Exit status: 0 installed or already there; 1 installation failed; 2 not root / no apt-get.
set -euo pipefail
if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
  exit 0
fi
how="sudo apt-get update && sudo apt-get install -y chromium chromium-driver"
if [[ "$(id -u)" != "0" ]]; then
  echo "[browser] Chromium for the browser tests is missing; install it with: $how" >&2
  exit 2
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "[browser] no apt-get here; install Chromium and chromedriver with your package manager" \
       "(the browser tests expect /usr/bin/chromium and /usr/bin/chromedriver)" >&2
  exit 2
fi
log="${TMPDIR:-/tmp}/install_browser.$$.log"
echo "[browser] installing chromium and chromium-driver with apt-get (first run: a minute or two)" >&2
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver; } >"$log" 2>&1; then
  tail -n 30 "$log" >&2
  echo "[browser] installation failed; full log: $log" >&2
  exit 1
fi
rm -f "$log"
