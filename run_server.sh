#!/usr/bin/env bash
# Run the teleoperation daemon. Creates .venv and installs the project on first use.
#   ./run_server.sh --debug                 # MuJoCo arm + simulated VR, no hardware needed
#   ./run_server.sh --performance           # real arm (robot server on --robot-host), Quest over adb
set -euo pipefail
cd "$(dirname "$0")"
source tools/bootstrap.sh
exec oculus-server "$@"
