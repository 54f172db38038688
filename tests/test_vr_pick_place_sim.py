"""The --debug demo really picks: the daemon, driven by `scripted:pick_place@loop=1`, stacks the
red cube on the blue one in the MuJoCo simulator, then puts it back — checked on the simulator's
own state (cube bodies), not on what the daemon believes."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest

from frankateach.sim.model import CUBE_HALF_SIZE, CUBES
from frankateach.sim.server import start_sim_server
from oculus_server.daemon import Daemon
from oculus_server.vr import make_source
from oculus_server.vr.trajectories import PICK_PLACE_TIMES
from tests.daemon_fakes import daemon_config

pytestmark = pytest.mark.slow

RUN_S = PICK_PLACE_TIMES["end"][0]  # one pick-and-place, trajectory seconds (speed 1)
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
    cfg = daemon_config(tmp_path / "rec", sim.ports.control, vr_source=spec, record=False, record_on_start=False)
    daemon = Daemon(cfg, make_source(spec))
    start = {name: _cube(sim, name) for name in CUBES}
    seen: list[tuple[float, np.ndarray]] = []
    t0 = time.monotonic()

    def watch_until(t_end: float) -> dict[str, np.ndarray]:
        """Samples the red cube until `t_end` s after the start; returns every cube then."""
        while time.monotonic() - t0 < t_end:
            assert not daemon.stop_event.is_set(), "the daemon stopped"
            time.sleep(0.1)
            seen.append((time.monotonic() - t0, _cube(sim, "red_cube")))
        return {name: _cube(sim, name) for name in CUBES}

    try:
        daemon.start()
        t0 = time.monotonic()
        after_pick = watch_until(RUN_S + 0.5)  # just after the first run (pick_place) ends
        after_back = watch_until(2 * RUN_S + 0.5)  # ... and the second (place_back)
    finally:
        daemon.stop_event.set()
        daemon.shutdown()
        sim.stop()
    top = 3 * CUBE_HALF_SIZE  # centre height of a cube resting on another one

    red, blue = after_pick["red_cube"], after_pick["blue_cube"]
    lifted = max(p[2] for t, p in seen if t < RUN_S)
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
