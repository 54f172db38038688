"""The LeRobot environment and a tiny checkpoint made by real LeRobot training, for the tests.

`lerobot_python()` is the env's interpreter when ``tools/make_lerobot_env.sh`` has built it
(``./run_tests.sh --all`` does), else the tests skip with that command. `tiny_checkpoint()` records two
short arena episodes (tools/make_arena_demos.py: color-reach, 64×48 frames, one red and one
green cube to lift), exports them as a LeRobot dataset (PNG frames, the instruction's one-hot)
and trains a small ACT for a few steps with ``lerobot-train`` (tools/train_lerobot.py), once
per test run (the xdist workers share it); ~30 s on 2 cores.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENV_COMMAND = "tools/make_lerobot_env.sh"
SKIP_REASON = (f"the LeRobot environment is not built: run `{ENV_COMMAND}` (~5 min, ~1.8 GB; "
               "./run_tests.sh --all does it)")


@dataclass(frozen=True)
class TinyCheckpoint:
    python: str
    path: Path  # .../checkpoints/last/pretrained_model
    catalog: Path  # the built-in catalog plus "act-tiny"
    dataset: Path
    model_id: str = "act-tiny"


def lerobot_python() -> str | None:
    """The env's interpreter, or None when it is not built."""
    out = subprocess.run([str(ROOT / ENV_COMMAND), "--check"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True, timeout=30)
    return out.stdout.strip() if out.returncode == 0 else None


def require_lerobot() -> str:
    """The env's interpreter, or skips the test naming the command that builds it."""
    py = lerobot_python()
    if py is None:
        pytest.skip(SKIP_REASON)
    return py


_lock = threading.Lock()
_made: list[TinyCheckpoint] = []


def _run(cmd: list[str], what: str) -> None:
    env = dict(os.environ, MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"))
    r = subprocess.run(cmd, cwd=str(ROOT), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=900)
    if r.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {r.returncode}):\n{r.stdout[-4000:]}")


STALE_S = 6 * 3600.0  # a shared checkpoint folder of an earlier test run is removed after this


def _shared_root() -> Path | None:
    """The folder all xdist workers of this test run share (None outside xdist): the checkpoint
    is made once per run, not once per worker."""
    uid = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if not uid:
        return None
    tmp = Path(tempfile.gettempdir())
    for old in tmp.glob("lerobot-tiny-run-*"):  # earlier runs' (nobody removes a shared one at exit)
        with contextlib.suppress(OSError):
            if time.time() - old.stat().st_mtime > STALE_S:
                shutil.rmtree(old, ignore_errors=True)
    return tmp / f"lerobot-tiny-run-{uid}"


def tiny_checkpoint() -> TinyCheckpoint:
    """The tiny ACT checkpoint (made on first use in this test run; skips without the env)."""
    python = require_lerobot()
    with _lock:
        if _made:
            return _made[0]
        shared = _shared_root()
        if shared is None:
            root = Path(tempfile.mkdtemp(prefix="lerobot-tiny-"))
            atexit.register(shutil.rmtree, root, True)
            _made.append(_make(python, root))
            return _made[0]
        shared.mkdir(exist_ok=True)
        with open(shared / ".lock", "a+b") as lock:  # another worker may be making it
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                done = shared / "made"
                made = _checkpoint(python, shared)
                if not done.exists():
                    made = _make(python, shared)
                    done.touch()
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
        _made.append(made)
        return made


def _checkpoint(python: str, root: Path) -> TinyCheckpoint:
    return TinyCheckpoint(python, root / "train" / "checkpoints" / "last" / "pretrained_model",
                          root / "catalog.yaml", root / "demos")


def _make(python: str, root: Path) -> TinyCheckpoint:
    """Records the demos and trains the tiny ACT under `root`."""
    try:
        dataset = root / "demos"
        _run([sys.executable, "tools/make_arena_demos.py", "--out", str(dataset), "--episodes", "2", "--steps", "12",
              "--width", "64", "--height", "48", "--size", "64x48", "--all"], "recording the demonstrations")
        catalog = root / "catalog.yaml"
        _run([sys.executable, "tools/train_lerobot.py", "--dataset", str(dataset), "--out", str(root / "train"),
              "--steps", "3", "--batch-size", "4", "--catalog", str(catalog), "--id", "act-tiny", "--",
              "--policy.dim_model=32", "--policy.dim_feedforward=64", "--policy.n_heads=2",
              "--policy.n_decoder_layers=1", "--policy.n_encoder_layers=1"], "training the tiny ACT")
        return _checkpoint(python, root)
    except BaseException:  # a half-made folder must not pass for a checkpoint (another worker retries)
        for part in ("demos", "train", "catalog.yaml"):
            target = root / part
            if target.is_dir():
                shutil.rmtree(target, ignore_errors=True)
            else:
                target.unlink(missing_ok=True)
        raise
