#!/usr/bin/env bash
# Installs Debian's Chromium and its WebDriver (packages `chromium`, `chromium-driver`) for the
# browser tests (tests/test_web_*.py), from the system package manager only — never a browser
# download from anywhere else. Needs root (as in CI); otherwise it only says what to run.
# Exit status: 0 installed or already there; 1 installation failed; 2 not root / no apt-get.
set -euo pipefail
if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
  exit 0
fi
exec "$(dirname "$0")/install_debs.sh" browser chromium chromium-driver
