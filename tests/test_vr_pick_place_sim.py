"""The --debug demo really picks: the daemon, driven by `scripted:pick_place@loop=1`, stacks the
red cube on the blue one in the MuJoCo simulator, then puts it back — checked on the simulator's
own state (cube bodies), not on what the daemon believes."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest

from frankateach.constants import REQUEST_TIMEOUT_S
from frankateach.sim.model import CUBE_HALF_SIZE, CUBES
from frankateach.sim.server import start_sim_server
from oculus_server.daemon import Daemon
from oculus_server.vr import make_source
from oculus_server.vr.scripted import ScriptedSource
from oculus_server.vr.trajectories import GATE_TIMEOUT_S, PICK_PLACE_TIMES
from tests.daemon_fakes import daemon_config

pytestmark = pytest.mark.slow

RUN_TIMEOUT_S = PICK_PLACE_TIMES["end"][0] + 7 * GATE_TIMEOUT_S  # one run, every gate waiting its longest
SIM_LATENCY_MS = 150.0  # what --debug emulates (a real deoxys server's round trip)
XY_TOL_M = 0.015  # a stacked cube's centre within this of the lower cube's (cubes are 4.5 cm)


@pytest.fixture(autouse=True)
def _restore_switch_interval():
    before = sys.getswitchinterval()
    yield
    sys.setswitchinterval(before)


def _cube(sim, name: str) -> np.ndarray:
    return sim.backend.body_position(name)


def test_debug_demo_stacks_the_red_cube_on_the_blue_one_and_puts_it_back(tmp_path: Path) -> None:
    sim = start_sim_server("127.0.0.1", latency_ms=SIM_LATENCY_MS)
    spec = "scripted:pick_place@loop=1"
    # As --debug runs it: the simulator's state feed (the arm's measured pose at 100 Hz, which the
    # scripted operator watches) and the default request timeout.
    cfg = daemon_config(tmp_path / "rec", sim.ports.control, vr_source=spec, record=False, record_on_start=False,
                        state_port=sim.ports.state, request_timeout_s=REQUEST_TIMEOUT_S)
    source = make_source(spec)
    assert isinstance(source, ScriptedSource)
    daemon = Daemon(cfg, source)
    start = {name: _cube(sim, name) for name in CUBES}
    seen: list[tuple[int, np.ndarray]] = []

    def watch_until_run(run: int) -> dict[str, np.ndarray]:
        """Samples the red cube until the source plays `run` (the runs before it are over; the
        source waits for the arm at its gates, so a run takes as long as the arm needs, within
        RUN_TIMEOUT_S); returns every cube then."""
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while source.run < run:
            assert not daemon.stop_event.is_set(), "the daemon stopped"
            assert time.monotonic() < deadline, f"run {source.run} did not end within {RUN_TIMEOUT_S} s"
            time.sleep(0.1)
            seen.append((source.run, _cube(sim, "red_cube")))
        return {name: _cube(sim, name) for name in CUBES}

    try:
        daemon.start()
        after_pick = watch_until_run(1)  # the first run (pick_place) is over
        after_back = watch_until_run(2)  # ... and the second (place_back)
    finally:
        daemon.stop_event.set()
        daemon.shutdown()
        sim.stop()
    top = 3 * CUBE_HALF_SIZE  # centre height of a cube resting on another one

    red, blue = after_pick["red_cube"], after_pick["blue_cube"]
    lifted = max(p[2] for run, p in seen if run < 1)
    print(f"run 1: red {np.round(red, 4)} on blue {np.round(blue, 4)} (lifted to {lifted:.3f} m)")
    assert lifted > 0.1, "the red cube was never lifted"
    assert np.linalg.norm(red[:2] - blue[:2]) < XY_TOL_M, "red is not above blue"
    assert red[2] == pytest.approx(top, abs=0.004), "red is not resting on blue"
    np.testing.assert_allclose(blue, start["blue_cube"], atol=0.005)
    np.testing.assert_allclose(after_pick["green_cube"], start["green_cube"], atol=1e-3)

    red = after_back["red_cube"]
    print(f"run 2: red back at {np.round(red, 4)} (started at {np.round(start['red_cube'], 4)})")
    assert np.linalg.norm(red[:2] - start["red_cube"][:2]) < XY_TOL_M
    assert red[2] == pytest.approx(CUBE_HALF_SIZE, abs=0.003), "red is not back on the table"
    np.testing.assert_allclose(after_back["green_cube"], start["green_cube"], atol=1e-3)
