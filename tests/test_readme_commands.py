"""The README's commands, run as written (subprocess, no terminal, real flags), checked on the real
parts: the simulator's own state, the service's own protocol, the arena's files.

`./run_server.sh --debug` runs on its default ports (see `tests/debug_demo.py`): those tests share
one xdist group, so they never run at the same time.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.debug_demo import DEFAULT_PORTS_GROUP, demo_outcome, run_debug_demo, venv_missing

pytestmark = [pytest.mark.slow, pytest.mark.skipif(venv_missing() is not None, reason=venv_missing() or "")]

BUSY_LOOP = "while 1: pass"


def _check_first_episode_stacks(tmp_path: Path) -> None:
    run = run_debug_demo(tmp_path)
    assert run.returncode == 0, run.log[-4000:]
    assert run.episode is not None, f"no episode was filed:\n{run.log[-4000:]}"
    assert "looping the scripted pick-and-place demo" in run.log
    outcome = demo_outcome(run.episode)
    print(f"{run.episode.name}: {outcome.describe()} ({run.wall_s:.0f} s)")
    assert outcome.stacked, outcome.describe()
    assert run.episode.parent.name == "success"


@pytest.mark.xdist_group(DEFAULT_PORTS_GROUP)
def test_run_server_debug_with_no_terminal_stacks_the_red_cube_on_the_blue_one(tmp_path: Path) -> None:
    _check_first_episode_stacks(tmp_path)


@pytest.mark.xdist_group(DEFAULT_PORTS_GROUP)
def test_run_server_debug_stacks_the_red_cube_beside_a_cpu_bound_process(tmp_path: Path) -> None:
    busy = subprocess.Popen([sys.executable, "-c", BUSY_LOOP], stdin=subprocess.DEVNULL)
    try:
        _check_first_episode_stacks(tmp_path)
    finally:
        busy.kill()
        busy.wait()
