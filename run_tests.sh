#!/usr/bin/env bash
# Run the test suite. Creates .venv and installs the project with its test extras on first use.
set -euo pipefail
cd "$(dirname "$0")"
source tools/bootstrap.sh
# The browser tests (tests/test_web_*.py) drive Debian's Chromium; install it when root (CI), else they skip.
[[ -n "${SKIP_BROWSER_INSTALL:-}" ]] || tools/install_browser.sh || true
exec python -m pytest -q "$@"
