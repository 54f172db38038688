#!/usr/bin/env bash
# Regenerate the README's web UI screenshots (docs/images/ui_*.png) by running the browser tests
# with their screenshot folder pointed at docs/images/ (the suite itself writes build/screenshots/,
# so `./run_tests.sh` never modifies tracked files). Needs Debian's chromium + chromium-driver
# (tools/install_browser.sh installs them when root).
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/bootstrap.sh
VLA_TEST_SCREENSHOT_DIR="$PWD/docs/images" exec python -m pytest -q -p no:randomly -p no:xdist \
  tests/test_web_ui.py tests/test_web_arena.py "$@"
