#!/usr/bin/env bash
# Run the test suite. Creates .venv and installs the project with its test extras on first use.
set -euo pipefail
cd "$(dirname "$0")"
source tools/bootstrap.sh
# Two tiers. By default the tests not marked `slow` (3½–4 min here on 2 cores). `--all` adds the
# slow ones (each README command run as written, the LeRobot backend, browser walks, daemon runs of
# tens of seconds; 12–14 min in all). CI runs ./run_tests.sh as the README shows it. Naming test files or node ids
# runs those whatever their mark (and, like --all, builds the LeRobot env they may need).
tier=fast
args=()
for a in "$@"; do
  if [[ "$a" == "--all" ]]; then
    tier=all
  else
    args+=("$a")
    if [[ "$a" == *::* || ( "$a" != -* && -e "${a%%::*}" ) ]]; then tier=named; fi
  fi
done
if [[ "$tier" == fast ]]; then
  set -- -m "not slow" ${args[@]+"${args[@]}"}
else
  set -- ${args[@]+"${args[@]}"}
fi
# The browser tests (tests/test_web_*.py) drive Debian's Chromium; install it when root (CI), else they skip.
[[ -n "${SKIP_BROWSER_INSTALL:-}" ]] || tools/install_browser.sh || true
# The RealtimeKit tests (tests/test_rtkit.py) start Debian's dbus-daemon, polkitd and rtkit-daemon on a
# private bus; install them when root (CI), else they skip.
[[ -n "${SKIP_BROWSER_INSTALL:-}" ]] || tools/install_debs.sh rtkit dbus-daemon polkitd rtkit || true
# The WebXR browser tests load Meta's WebXR emulation runtime (npm `iwer`) into .cache/iwer (git-ignored).
[[ -n "${SKIP_BROWSER_INSTALL:-}" ]] || tools/install_iwer.sh || true
# The LeRobot environment (tools/make_lerobot_env.sh: CPU torch + LeRobot, ~1.7 GB under ~/.cache, reused
# by every clone on this machine; a few minutes the first time) for the lerobot backend's tests, which
# skip without it. SKIP_LEROBOT_ENV=1 skips building it; the default tier does not need it.
[[ -n "${SKIP_LEROBOT_ENV:-}" || "$tier" == fast ]] || tools/make_lerobot_env.sh >/dev/null \
  || echo "[lerobot-env] could not be built; the lerobot tests will skip" >&2
# Lint and type-check first (pyproject.toml: [tool.ruff], [tool.mypy]); SKIP_LINT=1 skips them.
if [[ -z "${SKIP_LINT:-}" ]]; then
  echo "[lint] ruff check" >&2
  python -m ruff check --quiet . || { echo "[lint] ruff found problems (ruff check --fix fixes some)" >&2; exit 1; }
  echo "[lint] mypy" >&2
  python -m mypy || { echo "[lint] mypy found type errors" >&2; exit 1; }
  echo "[lint] lint-imports (layers: pyproject.toml [tool.importlinter])" >&2
  lint-imports --no-cache || { echo "[lint] an import runs up or sideways between packages" >&2; exit 1; }
fi
# Two workers (the 2-core CI machine; PYTEST_WORKERS=N or 0 to change), tests in random order
# (pytest-randomly prints its seed; rerun an order with --randomly-seed=SEED, or `-p no:randomly`
# for file order). Tests that need the README's default ports take a machine-wide lock
# (tests/debug_demo.py), not an xdist group: --dist loadgroup does not group under pytest 9.2.
exec python -m pytest -q -n "${PYTEST_WORKERS:-2}" "$@"
