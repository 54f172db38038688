"""Scripted trajectories: determinism, button timing, and the robot motion DROID's mapping yields."""

from __future__ import annotations

import numpy as np
import pytest

from oculus_server.errors import ConfigError
from oculus_server.vr.parser import rigid_problem
from oculus_server.vr.scripted import ScriptedSource
from oculus_server.vr.source import SourceState
from oculus_server.vr.trajectories import (
    _APP_TO_ROBOT,
    BLUE_CUBE_XY,
    CUBE_SIZE_M,
    GATE_TOL_M,
    GRASP_Z,
    GRIP_PRESS_T,
    HOVER_Z,
    MOVE_PHASES,
    PICK_PLACE_START_TCP,
    PICK_PLACE_TIMES,
    PICK_PLACE_WAYPOINTS,
    PUT_RED_BACK,
    RED_CUBE_XY,
    REST_RIGHT_POS,
    TRAJECTORIES,
    get_trajectory,
)


class ManualClock:
    """A clock that only moves when told to (seconds)."""

    def __init__(self, t: float = 500.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def droid_reorder(vec: list[int]) -> np.ndarray:
    """DROID's rmat_reorder vector -> signed permutation matrix (written from its definition)."""
    m = np.zeros((len(vec), len(vec)))
    for row, v in enumerate(vec):
        m[row, abs(v) - 1] = np.sign(v)
    return m


G = droid_reorder([-2, -1, -3, 4])


def robot_frame(pose: np.ndarray, calib: np.ndarray) -> np.ndarray:
    """DROID's view of a controller pose: G · vr_to_global · pose with vr_to_global = inv(calib pose)."""
    return G @ np.linalg.inv(calib) @ pose


def play(traj: str, t_end: float, dt: float = 0.02) -> list[tuple[float, dict, dict]]:
    tr = get_trajectory(traj)
    return [(t, *tr.sample(t)) for t in np.arange(0.0, t_end, dt)]


@pytest.mark.parametrize("name", list(TRAJECTORIES))
def test_every_trajectory_is_rigid_still_before_grip_and_has_full_buttons(name: str) -> None:
    samples = play(name, 12.0, dt=0.05)
    rest = samples[0][1]["r"]
    for t, poses, buttons in samples:
        for pose in poses.values():
            assert rigid_problem(pose.reshape(16).tolist()) is None, (name, t)
        assert set(buttons) >= {"A", "B", "RG", "RTr", "rightTrig", "rightGrip", "rightJS", "X", "leftTrig"}
        if t < GRIP_PRESS_T:
            np.testing.assert_allclose(poses["r"], rest)  # still for 1 s before the first grip press
            assert buttons["RG"] is False
    first_grip = next(t for t, _, b in samples if b["RG"])
    assert first_grip == pytest.approx(GRIP_PRESS_T, abs=0.05)
    # Plausible rest: 0.3 m below and 0.3 m in front of the head (y up, −z forward).
    assert rest[1, 3] == pytest.approx(-0.3) and rest[2, 3] == pytest.approx(-0.3)


def test_pick_place_buttons_at_their_times() -> None:
    tr = get_trajectory("pick_place")
    T = PICK_PLACE_TIMES
    for t in np.arange(0.0, T["end"][0], 0.01):
        _, b = tr.sample(float(t))
        assert b["A"] == (T["a_start"][0] <= t < T["a_start"][1] or T["a_stop"][0] <= t < T["a_stop"][1]), t
        assert b["B"] == (T["b_success"][0] <= t < T["b_success"][1]), t
        assert b["RG"] == (T["grip"][0] <= t < T["grip"][1]), t
        assert b["rightGrip"] == (1.0 if b["RG"] else 0.0)
        assert b["RTr"] == (b["rightTrig"] >= 0.5)
        if t < T["close"][0] or t >= T["open"][1]:
            assert b["rightTrig"] == 0.0, t
        if T["close"][1] <= t < T["open"][0]:
            assert b["rightTrig"] == 1.0, t
    # Order of events: A (start) < grip < ... < grip release < B (success) < A (stop).
    assert T["a_start"][1] < T["grip"][0] < T["approach"][0] and T["grip"][1] < T["b_success"][0] < T["a_stop"][0]
    # The gripper closes only at the bottom of "down" and opens only at the bottom of "lower".
    assert T["down"][1] < T["close"][0] < T["close"][1] < T["lift"][0]
    assert T["lower"][1] < T["open"][0] < T["open"][1] < T["retreat"][0]
    assert T["return"][1] + 1.0 <= T["grip"][1]  # the arm settles back home before the release


def _robot_deltas(name: str):
    tr = get_trajectory(name)
    calib = tr.sample(PICK_PLACE_TIMES["grip"][0])[0]["r"]  # DROID freezes vr_to_global here
    origin = robot_frame(calib, calib)

    def robot_delta(t: float) -> np.ndarray:
        return robot_frame(tr.sample(t)[0]["r"], calib)[:3, 3] - origin[:3, 3]

    return tr, calib, robot_delta


def test_pick_place_goes_to_the_red_cube_and_stacks_it_on_the_blue_one() -> None:
    T = PICK_PLACE_TIMES
    tr, calib, robot_delta = _robot_deltas("pick_place")
    start = np.array(PICK_PLACE_START_TCP)
    np.testing.assert_allclose(robot_delta(T["approach"][0]), 0.0, atol=1e-12)
    for phase in MOVE_PHASES:  # at the end of each move, DROID's mapping gives the waypoint
        np.testing.assert_allclose(robot_delta(T[phase][1]), PICK_PLACE_WAYPOINTS[phase], atol=1e-9, err_msg=phase)
    # Where those waypoints are, in the scene: over the red cube, down to grasp, up, over the
    # blue cube, down to one cube above it, up, and back where it started.
    at = {phase: start + PICK_PLACE_WAYPOINTS[phase] for phase in MOVE_PHASES}
    np.testing.assert_allclose(at["approach"], [*RED_CUBE_XY, HOVER_Z], atol=1e-12)
    np.testing.assert_allclose(at["down"], [*RED_CUBE_XY, GRASP_Z], atol=1e-12)
    np.testing.assert_allclose(at["carry"], [*BLUE_CUBE_XY, HOVER_Z], atol=1e-12)
    assert at["lower"][2] == pytest.approx(GRASP_Z + CUBE_SIZE_M + 0.01)
    np.testing.assert_allclose(at["return"], start, atol=1e-12)
    # The gripper closes at the bottom, holds through the carry, and opens over the blue cube.
    np.testing.assert_allclose(robot_delta(T["close"][0]), PICK_PLACE_WAYPOINTS["down"], atol=1e-12)
    np.testing.assert_allclose(robot_delta(T["open"][0]), PICK_PLACE_WAYPOINTS["lower"], atol=1e-12)
    assert tr.sample(T["lift"][0])[1]["rightTrig"] == 1.0 and tr.sample(T["carry"][1])[1]["rightTrig"] == 1.0
    # The wrist never turns: DROID sees a constant relative orientation.
    for t in np.arange(T["grip"][0], T["end"][0], 0.1):
        np.testing.assert_allclose(robot_frame(tr.sample(float(t))[0]["r"], calib)[:3, :3], G[:3, :3], atol=1e-12)
    # Smooth: no step between 50 Hz samples larger than 5 mm (well under the policy's jump limit).
    positions = np.array([tr.sample(t)[0]["r"][:3, 3] for t in np.arange(0, T["end"][0], 0.02)])
    assert np.max(np.linalg.norm(np.diff(positions, axis=0), axis=1)) < 0.005


def test_place_back_takes_the_red_cube_off_the_blue_one_and_puts_it_back() -> None:
    T = PICK_PLACE_TIMES
    _, _, robot_delta = _robot_deltas("place_back")
    start = np.array(PICK_PLACE_START_TCP)
    np.testing.assert_allclose(start + robot_delta(T["down"][1]), [*BLUE_CUBE_XY, GRASP_Z + CUBE_SIZE_M], atol=1e-9)
    np.testing.assert_allclose(start + robot_delta(T["lower"][1]), [*RED_CUBE_XY, PUT_RED_BACK.place_z], atol=1e-9)
    np.testing.assert_allclose(robot_delta(T["end"][0]), 0.0, atol=1e-9)
    assert get_trajectory("place_back").duration_s == get_trajectory("pick_place").duration_s


def test_the_demo_matches_the_simulated_scene() -> None:
    # The trajectory cannot import MuJoCo; its idea of the scene is checked against the model here.
    import mujoco

    from frankateach.sim.model import CUBE_HALF_SIZE, CUBES, SimIndex, build_model, reset_to_home

    model = build_model(cameras=False)
    data = mujoco.MjData(model)
    reset_to_home(model, data)
    tcp = data.site_xpos[SimIndex.from_model(model).tcp_site]
    np.testing.assert_allclose(tcp, PICK_PLACE_START_TCP, atol=5e-4)
    assert CUBES["red_cube"][0] == RED_CUBE_XY and CUBES["blue_cube"][0] == BLUE_CUBE_XY
    assert 2 * CUBE_HALF_SIZE == pytest.approx(CUBE_SIZE_M)


def test_circle_and_figure8_move_after_the_grip_and_stay_small() -> None:
    for name, amplitude in (("circle", 0.16), ("figure8", 0.2)):
        samples = play(name, 12.0)
        pos = np.array([p["r"][:3, 3] for _, p, _ in samples])
        assert np.ptp(pos, axis=0).max() <= amplitude + 1e-9
        assert np.ptp(pos[int(3.0 / 0.02):], axis=0).max() > 0.05, name
        steps = np.linalg.norm(np.diff(pos, axis=0), axis=1)
        assert steps.max() < 0.01


def test_source_is_deterministic_for_a_given_clock() -> None:
    def run() -> list:
        clock = ManualClock()
        src = ScriptedSource("figure8", speed=1.5, clock=clock)
        src.start()
        out = []
        for dt in [0.0, 0.013, 0.02, 0.5, 0.007, 0.031, 1.2, 0.02, 0.02]:
            clock.t += dt
            out.append(src.poll())
        return out

    a, b = run(), run()
    assert [s is None for s in a] == [s is None for s in b]
    for x, y in zip(a, b):
        if x is not None:
            assert (x.seq, x.t_recv) == (y.seq, y.t_recv) and x.buttons == y.buttons
            np.testing.assert_array_equal(x.poses["r"], y.poses["r"])


def test_source_samples_on_a_grid_with_speed_and_gaps() -> None:
    clock = ManualClock()
    src = ScriptedSource("circle", speed=2.0, rate_hz=50.0, clock=clock)
    assert src.status().state is SourceState.WAITING
    src.start()
    s0 = src.poll()
    assert s0 is not None and s0.seq == 0
    assert src.poll() is None  # same grid point: nothing new
    clock.t += 0.019
    assert src.poll() is None
    clock.t += 0.002
    assert src.poll().seq == 1
    clock.t += 1.0  # a slow poller: seq jumps, sample = trajectory at 2 × elapsed
    s = src.poll()
    assert s.seq == 51
    expected = get_trajectory("circle").sample(51 / 50.0 * 2.0)[0]["r"]
    np.testing.assert_allclose(s.poses["r"], expected)
    assert src.status().state is SourceState.CONNECTED and src.status().samples == 3


def test_finite_trajectory_finishes_or_loops() -> None:
    end = PICK_PLACE_TIMES["end"][0]
    clock = ManualClock()
    src = ScriptedSource("pick_place", speed=4.0, clock=clock)
    src.start()
    clock.t += end / 4.0 - 0.01
    assert src.poll() is not None
    clock.t += 0.1
    assert src.poll() is None
    assert src.status().state is SourceState.FINISHED
    clock.t += 1.0
    assert src.poll() is None

    looped = ScriptedSource("pick_place", speed=4.0, loop=True, clock=clock)
    looped.start()
    clock.t += (end + 0.4) / 4.0  # 0.4 s of trajectory time into the second run: A is pressed
    s = looped.poll()
    assert s is not None and s.buttons["A"] is True
    assert looped.status().state is SourceState.CONNECTED
    assert "loop with place_back" in looped.status().detail


def test_looping_alternates_pick_place_with_place_back() -> None:
    T = PICK_PLACE_TIMES
    end = T["end"][0]
    src = ScriptedSource("pick_place", loop=True, rate_hz=50.0, clock=ManualClock())
    t_down = T["down"][1]
    for run, name in enumerate(["pick_place", "place_back", "pick_place", "place_back"]):
        k = int(round((run * end + t_down) * 50.0))
        trajectory, t = src.trajectory_at(k)
        assert trajectory.name == name and t == pytest.approx(t_down), run
    # A trajectory without an alternate repeats itself.
    plain = ScriptedSource("place_back", loop=False, clock=ManualClock())
    assert plain.trajectory_at(int(round((end + 1.0) * 50)))[0].name == "place_back"


def test_bad_arguments_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="hold, circle, figure8, pick_place"):
        ScriptedSource("spiral")
    with pytest.raises(ConfigError, match="speed"):
        ScriptedSource("circle", speed=0)
    with pytest.raises(ConfigError, match="rate"):
        ScriptedSource("circle", rate_hz=float("nan"))


def test_left_hand_variant_moves_the_left_controller_with_left_buttons() -> None:
    tr = get_trajectory("pick_place")
    T = PICK_PLACE_TIMES
    for t in np.arange(0.0, T["end"][0], 0.05):
        right_poses, right_b = tr.sample(float(t))
        left_poses, left_b = tr.sample(float(t), left=True)
        shift = left_poses["l"][:3, 3] - right_poses["r"][:3, 3]
        np.testing.assert_allclose(shift, [-0.30, 0.0, 0.0], atol=1e-12)
        np.testing.assert_allclose(left_poses["l"][:3, :3], right_poses["r"][:3, :3])
        np.testing.assert_allclose(left_poses["r"], get_trajectory("hold").sample(0.0)[0]["r"])
        for r_name, l_name in (
            ("A", "X"),
            ("B", "Y"),
            ("RG", "LG"),
            ("RTr", "LTr"),
            ("rightTrig", "leftTrig"),
            ("rightGrip", "leftGrip"),
        ):
            assert left_b[l_name] == right_b[r_name], (t, l_name)
        assert not any(left_b[k] for k in ("A", "B", "RG", "RTr")) and left_b["rightTrig"] == 0.0
    clock = ManualClock()
    src = ScriptedSource("pick_place", left=True, clock=clock)
    src.start()
    clock.t += 2.0
    s = src.poll()
    assert s.buttons["LG"] is True and s.buttons["RG"] is False


# -- gates: the scripted operator waits for the arm ------------------------------------------------

class LaggingArm:
    """A hand that follows the controller's robot-frame displacement at most `speed` m/s (a slow arm)."""

    def __init__(self, speed: float, origin=PICK_PLACE_START_TCP) -> None:
        self.origin = np.array(origin, dtype=float)
        self.pos = self.origin.copy()
        self.speed = speed

    def follow(self, sample, dt: float) -> None:
        goal = self.origin + _APP_TO_ROBOT @ (sample.poses["r"][:3, 3] - REST_RIGHT_POS)
        step = goal - self.pos
        n = float(np.linalg.norm(step))
        self.pos = goal if n <= self.speed * dt else self.pos + step * (self.speed * dt / n)


def _drive(src: ScriptedSource, arm: LaggingArm, clock: ManualClock, seconds: float, dt: float = 0.02):
    """Polls like the VR thread for `seconds` of wall time; yields (sample, the arm's position)."""
    last = None
    for _ in range(int(round(seconds / dt))):
        clock.t += dt
        s = src.poll()
        last = s or last
        if last is not None:
            arm.follow(last, dt)
        if s is not None:
            yield s, arm.pos.copy()


def _closing_starts(src: ScriptedSource, arm: LaggingArm, clock: ManualClock) -> np.ndarray:
    """The arm's position when the trigger first rises (the fingers start closing)."""
    for s, pos in _drive(src, arm, clock, 60.0):
        if s.buttons["rightTrig"] > 0.0:
            return pos
    raise AssertionError("the trigger never rose")


def test_pick_place_waits_for_a_slow_arm_before_closing_the_fingers() -> None:
    grasp = np.array([*RED_CUBE_XY, GRASP_Z])
    clock = ManualClock()
    blind = ScriptedSource("pick_place", clock=clock)  # plays on the clock: the slow arm is still far
    blind.start()
    assert np.linalg.norm(_closing_starts(blind, LaggingArm(0.05), clock) - grasp) > 0.05

    clock = ManualClock()
    arm = LaggingArm(0.05)
    src = ScriptedSource("pick_place", clock=clock)
    src.watch_robot(lambda: arm.pos.copy())
    src.start()
    at_close = _closing_starts(src, arm, clock)
    assert np.linalg.norm(at_close - grasp) <= GATE_TOL_M
    waited = dict((name, (s, ok)) for name, s, ok in src.gate_waits)
    assert waited["approach"][1] and waited["down"][1] and waited["down"][0] > 0.5


def test_a_gate_waits_past_its_timeout_for_an_arm_that_keeps_coming_closer() -> None:
    """A slow arm (a busy machine) takes longer than the timeout to reach a gate: it is still
    moving, so the gate keeps waiting, and the fingers close at the cube."""
    grasp = np.array([*RED_CUBE_XY, GRASP_Z])
    clock = ManualClock()
    arm = LaggingArm(0.01)  # 1 cm/s: ~2 mm every 0.2 s, far slower than the 2 s timeout allows
    src = ScriptedSource("pick_place", clock=clock, gate_timeout_s=2.0)
    src.watch_robot(lambda: arm.pos.copy())
    src.start()
    at_close = _closing_starts(src, arm, clock)
    assert np.linalg.norm(at_close - grasp) <= GATE_TOL_M
    assert all(ok for _, _, ok in src.gate_waits), src.gate_waits
    assert max(s for _, s, _ in src.gate_waits) > 2.0, src.gate_waits


def test_a_gate_gives_up_after_its_timeout_and_no_state_plays_on_the_clock() -> None:
    clock = ManualClock()
    src = ScriptedSource("pick_place", clock=clock, gate_timeout_s=2.0)
    stuck = np.array(PICK_PLACE_START_TCP)
    src.watch_robot(lambda: stuck)  # an arm that never moves
    src.start()
    t_close = None
    for s, _ in _drive(src, LaggingArm(0.0), clock, 30.0):
        if s.buttons["rightTrig"] > 0.0:
            t_close = clock.t - 500.0
            break
    assert t_close == pytest.approx(PICK_PLACE_TIMES["close"][0] + 2 * 2.0, abs=0.05)  # approach, down: 2 s each
    assert [(n, ok) for n, _, ok in src.gate_waits] == [("approach", False), ("down", False)]

    clock = ManualClock()
    blind = ScriptedSource("pick_place", clock=clock)
    blind.watch_robot(lambda: None)  # no fresh state at the grip press: no gates
    blind.start()
    clock.t += PICK_PLACE_TIMES["close"][0] + 0.05
    assert blind.poll().buttons["rightTrig"] > 0.0 and blind.gate_waits == []
