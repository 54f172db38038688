#!/usr/bin/env bash
# Installs Debian packages a group of tests needs, from the system package manager only:
#   tools/install_debs.sh LABEL PACKAGE...
# e.g. `tools/install_debs.sh browser chromium chromium-driver`. Needs root (as in CI); otherwise it
# only says what to run. Quiet: apt output goes to a log shown on failure. Safe to run again (does
# nothing when every package is installed).
# Exit status: 0 installed or already there; 1 installation failed; 2 not root / no apt-get.
set -euo pipefail
label="$1"
shift
missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
how="sudo apt-get update && sudo apt-get install -y ${missing[*]}"
if [[ "$(id -u)" != "0" ]]; then
  echo "[$label] missing for its tests: ${missing[*]}; install with: $how" >&2
  exit 2
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "[$label] no apt-get here; install ${missing[*]} with your package manager" >&2
  exit 2
fi
log="${TMPDIR:-/tmp}/install_debs.$label.$$.log"
echo "[$label] installing ${missing[*]} with apt-get (first run: a minute or two)" >&2
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
  tail -n 30 "$log" >&2
  echo "[$label] installation failed; full log: $log" >&2
  exit 1
fi
rm -f "$log"
