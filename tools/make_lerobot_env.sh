#!/usr/bin/env bash
# Builds the LeRobot environment that serves and trains `lerobot` models (vla_server/policies/
# lerobot_policy.py): a venv with CPU torch, LeRobot and the few packages its policies, datasets
# and training loop import. Idempotent: a stamp file names what was installed; a second run with
# the same recipe does nothing. Prints the interpreter path (the catalog's `python:` key) last.
#
#   tools/make_lerobot_env.sh            # build (or check) the env, print its python
#   tools/make_lerobot_env.sh --print    # only print where the env's python is (built or not)
#   tools/make_lerobot_env.sh --check    # print it and exit 0 when the env is built and current, else exit 1
#
# Where: $LEROBOT_ENV, default ~/.cache/robot-arm/lerobot-0.4.4-py311 (outside the clone, so
# every clone and every CI run on this machine reuses it). Which Python: $LEROBOT_PYTHON, else the
# first of python3.11 / python3.12 / python3 found.
#
# Why these versions (see README "Training a policy"): LeRobot 0.4.4 is the newest release that
# installs on Python 3.11, whose CPU build of torch (2.13.0, ~0.9 GB) this machine has on disk.
# LeRobot's own pins (torch<2.11, torchvision<0.26, plus wandb, rerun, opencv, torchcodec …)
# would download a CUDA torch of several GB, so it is installed --no-deps with the packages its
# policies (ACT, Diffusion), LeRobotDataset (pyav video decoding) and lerobot-train import.
# torchvision 0.25 is LeRobot's own newest allowed release and still has the pyav VideoReader
# that LeRobotDataset's pyav backend decodes with (0.26+ dropped it). PyPI's torchvision cannot
# load its compiled ops beside CPU torch; its pure-Python models (what ACT and Diffusion use) work
# once two op schemas exist: lerobot_compat.py does that, installed here as a .pth import hook.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LEROBOT_VERSION="0.4.4"
TORCH_SPEC="torch==2.13.0"
TORCHVISION_SPEC="torchvision==0.25.0"
DEPS=(
  "numpy>=1.26,<2.3" "scipy" "msgpack" "pillow" "pyyaml"
  "huggingface-hub>=0.34.2,<0.36" "safetensors" "draccus==0.10.0" "datasets>=4,<5"
  "packaging>=24.2,<26" "einops>=0.8,<0.9" "av>=15,<16" "accelerate>=1.10,<2" "termcolor>=2.4"
  "jsonlines>=4" "deepdiff>=7,<9" "imageio>=2.34,<3" "diffusers>=0.27.2,<0.36" "pyserial>=3.5,<4"
  "gymnasium>=1.1.1,<2"
)
ENV_DIR="${LEROBOT_ENV:-$HOME/.cache/robot-arm/lerobot-${LEROBOT_VERSION}-py311}"
PY_OUT="$ENV_DIR/bin/python"
if [[ "${1:-}" == "--print" ]]; then echo "$PY_OUT"; exit 0; fi

recipe="lerobot==$LEROBOT_VERSION $TORCH_SPEC $TORCHVISION_SPEC ${DEPS[*]} $(sha1sum "$ROOT/vla_server/policies/lerobot_compat.py" | cut -c1-12)"
stamp="$ENV_DIR/.robot-arm-$(echo "$recipe" | sha1sum | cut -c1-12)"
if [[ "${1:-}" == "--check" ]]; then
  [[ -f "$stamp" && -x "$PY_OUT" ]] || { echo "[lerobot-env] not built (or out of date): run $0" >&2; exit 1; }
  echo "$PY_OUT"; exit 0
fi
if [[ -f "$stamp" && -x "$PY_OUT" ]]; then
  echo "[lerobot-env] up to date: $ENV_DIR ($(du -sh "$ENV_DIR" | cut -f1))" >&2
  echo "$PY_OUT"
  exit 0
fi

PY="${LEROBOT_PYTHON:-}"
if [[ -z "$PY" ]]; then
  for c in python3.11 python3.12 python3; do
    if command -v "$c" >/dev/null 2>&1; then PY="$(command -v "$c")"; break; fi
  done
fi
[[ -n "$PY" ]] || { echo "[lerobot-env] no python3 found; set LEROBOT_PYTHON" >&2; exit 1; }
ver="$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
case "$ver" in
  3.10|3.11|3.12|3.13) ;;
  *) echo "[lerobot-env] LeRobot $LEROBOT_VERSION needs Python >= 3.10, $PY is $ver" >&2; exit 1 ;;
esac
[[ "$ver" == "3.11" ]] || echo "[lerobot-env] note: $PY is Python $ver; only 3.11 finds CPU torch on this machine's disk (others download it)" >&2

t0=$(date +%s)
echo "[lerobot-env] building $ENV_DIR with $PY (Python $ver): CPU torch, LeRobot $LEROBOT_VERSION (~4-6 min, ~1.8 GB)" >&2
mkdir -p "$(dirname "$ENV_DIR")"
[[ -x "$PY_OUT" ]] || "$PY" -m venv "$ENV_DIR"  # an existing env is brought up to the recipe in place
rm -f "$ENV_DIR"/.robot-arm-*
log="$ENV_DIR/install.log"
pip_() { "$PY_OUT" -m pip install --disable-pip-version-check "$@" >>"$log" 2>&1; }
if ! { pip_ --upgrade pip \
       && pip_ "$TORCH_SPEC" \
       && pip_ --no-deps "$TORCHVISION_SPEC" "lerobot==$LEROBOT_VERSION" \
       && pip_ "${DEPS[@]}" "$TORCH_SPEC"; }; then
  tail -n 30 "$log" >&2
  echo "[lerobot-env] installation failed; full log: $log" >&2
  exit 1
fi
site="$("$PY_OUT" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
cp "$ROOT/vla_server/policies/lerobot_compat.py" "$site/_robot_arm_lerobot_compat.py"
echo "import _robot_arm_lerobot_compat; _robot_arm_lerobot_compat.install_import_hook()" >"$site/_robot_arm_lerobot_compat.pth"
# the check: LeRobot's ACT and Diffusion policies and its dataset class import
if ! "$PY_OUT" -c "import lerobot.policies.act.modeling_act, lerobot.policies.diffusion.modeling_diffusion, lerobot.datasets.lerobot_dataset" >>"$log" 2>&1; then
  tail -n 30 "$log" >&2
  echo "[lerobot-env] the env was built but LeRobot does not import; full log: $log" >&2
  exit 1
fi
touch "$stamp"
echo "[lerobot-env] done in $(( $(date +%s) - t0 )) s; $ENV_DIR takes $(du -sh "$ENV_DIR" | cut -f1)" >&2
echo "$PY_OUT"
