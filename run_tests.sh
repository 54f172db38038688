#!/usr/bin/env bash
# Run the test suite. Creates .venv and installs the project with its test extras on first use.
set -euo pipefail
cd "$(dirname "$0")"
source tools/bootstrap.sh
exec python -m pytest -q "$@"
