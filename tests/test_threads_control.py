"""The control thread on virtual time: robot view, policy, gate, queue — and the safety properties.

The thread is never started: `step()` is called on a `FakeClock`, with VR samples and robot
states placed in a real `SharedState`, and every command that leaves is read from the queue.
"""

from __future__ import annotations

import math
import queue

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation as R

from oculus_server.policy import PolicyConfig, VRPolicy
from oculus_server.robot_link import RobotLink
from oculus_server.safety import kinds
from oculus_server.safety.config import SafetyConfig
from oculus_server.safety.gate import GatedCommand
from oculus_server.safety.pose import clamp_box, distance
from oculus_server.state import SharedState
from oculus_server.threads.base import Supervisor
from oculus_server.threads.control import ControlThread
from robot_formats.recording.records import ControlMode, VRSample
from robot_formats.rotations import angle_between
from tests.control_fakes import DOWN, HOME, observation
from tests.fakes.clock import FakeClock
from tests.shared_parts import control_parts

I4 = np.eye(4)
LO = (0.2, -0.4, 0.05)
HI = (0.75, 0.4, 0.7)


def vr_pose(pos=(0.0, 0.0, 0.0)) -> np.ndarray:
    p = np.eye(4)
    p[:3, 3] = pos
    return p


class ControlRig:
    """A `ControlThread` stepped by hand on virtual time."""

    def __init__(self, hz: float = 20.0, hold_after_s: float = 0.5, safety: SafetyConfig | None = None,
                 reanchor_on_restore: bool = True) -> None:
        self.hz = hz
        self.clock = FakeClock(start=100.0)
        self.state = SharedState()
        self.commands: queue.Queue = queue.Queue(maxsize=100_000)
        self.policy = VRPolicy(PolicyConfig(control_hz=hz))
        self.thread = ControlThread(
            self.policy, self.commands, Supervisor(), **control_parts(self.state), hz=hz,
            hold_after_s=hold_after_s, safety=safety, clock=self.clock, wall=lambda: 1.7e9 + self.clock.now(),
            reanchor_on_restore=reanchor_on_restore,
        )
        self.vr_seq = 0
        self.epoch = 1

    @property
    def now(self) -> float:
        return self.clock.now()

    def vr(self, pose=I4, age: float = 0.0, **buttons) -> None:
        self.vr_seq += 1
        self.state.vr.set_sample(VRSample({"r": np.asarray(pose, dtype=float)}, buttons, self.now - age, self.vr_seq))

    def robot(self, pos=HOME, quat=DOWN, age: float = 0.0, up: bool = True, epoch: int | None = None) -> None:
        if epoch is not None:
            self.epoch = epoch
        obs = observation(pos, quat, self.now - age, self.epoch)
        self.state.robot.set_reply(obs, RobotLink(up=up, epoch=self.epoch))

    def link_down(self) -> None:
        self.state.robot.set_link(RobotLink(up=False, last_error="RobotTimeoutError: no reply", epoch=self.epoch))

    def tick(self, dt: float | None = None) -> list[GatedCommand]:
        self.clock.advance(1.0 / self.hz if dt is None else dt)
        self.thread.step()
        out = []
        while True:
            try:
                out.append(self.commands.get_nowait())
            except queue.Empty:
                return out

    def engage(self) -> GatedCommand:
        """Calibrates at the identity pose and presses the grip; returns the first engaged command."""
        self.robot()
        self.vr(I4)
        self.tick()  # hold (restore)
        self.vr(I4, RG=True)
        self.robot()
        (cmd,) = self.tick()
        assert cmd.command.engaged, cmd
        return cmd


def test_nothing_is_sent_before_the_robot_answers() -> None:
    rig = ControlRig()
    rig.vr(I4, RG=True)
    assert rig.tick() == [] and rig.tick() == []
    assert rig.state.commands.mode() is ControlMode.PREDICTIVE
    assert rig.state.safety.status().held == "robot state not yet received"


def test_episode_buttons_pressed_before_the_robot_answers_are_not_lost() -> None:
    """A (episode) and B (success) pressed while no robot state has come yet (a slow start-up)
    still reach the recorder: one request per press, and still nothing is sent."""
    rig = ControlRig()
    rig.vr(I4)
    assert rig.tick() == []
    rig.vr(I4, A=True)
    assert rig.tick() == []
    rig.vr(I4, A=True)  # still held: no second toggle
    rig.tick()
    rig.vr(I4, B=True)
    rig.tick()
    assert rig.state.episode.take_requests() == ["toggle", "success"]
    rig.robot()  # the robot answers: the held A is not a new press either
    rig.vr(I4)
    rig.tick()
    assert rig.state.episode.take_requests() == []


def test_first_command_holds_then_the_arm_follows_the_hand_every_tick() -> None:
    rig = ControlRig()
    rig.robot()
    rig.vr(I4, RG=True)
    (first,) = rig.tick()
    assert not first.command.engaged and first.command.interventions == (kinds.HOLD_RESTORE,)
    np.testing.assert_allclose(first.command.target.pos, HOME)
    rig.vr(I4)  # release and press again (the grip was already down at the start)
    rig.robot()
    rig.tick()
    rig.vr(I4, RG=True)
    rig.robot()
    (c,) = rig.tick()
    assert c.command.engaged and c.command.seq == first.command.seq + 2
    for k in range(1, 6):  # hand moves 1 cm per tick along VR x → robot −y
        rig.vr(vr_pose((0.01 * k, 0.0, 0.0)), RG=True)
        rig.robot(pos=c.command.target.pos)  # the arm is where it was sent
        (c,) = rig.tick()
        assert c.command.engaged and c.command.mode is ControlMode.REAL_TIME
    assert c.command.target.pos[1] < -0.005
    assert rig.state.commands.command() is c.command
    assert rig.state.safety.status() == rig.state.safety.status().__class__(held="", fault="", sending=True)


def test_a_down_or_silent_link_sends_nothing_and_the_return_holds_the_fresh_pose() -> None:
    rig = ControlRig()
    rig.engage()
    rig.link_down()
    rig.vr(vr_pose((0.02, 0, 0)), RG=True)
    assert rig.tick() == []
    assert rig.state.safety.status().held.startswith("robot link down: RobotTimeoutError")
    rig.robot(pos=HOME + [0.05, 0.0, 0.0], epoch=2)  # back, and the arm is elsewhere
    rig.vr(vr_pose((0.03, 0, 0)), RG=True)
    (c,) = rig.tick()
    np.testing.assert_allclose(c.command.target.pos, HOME + [0.05, 0.0, 0.0])
    assert not c.command.engaged and c.link_epoch == 2 and c.command.interventions == (kinds.HOLD_RESTORE,)
    rig.vr(vr_pose((0.03, 0, 0)), RG=True)
    rig.robot(pos=HOME + [0.05, 0.0, 0.0])
    (c,) = rig.tick()
    assert c.command.engaged  # re-anchored: it moves on from the fresh pose, without a lunge
    assert distance(c.command.target.pos, HOME + [0.05, 0.0, 0.0]) < 1e-9
    # silence on an "up" link: older than hold_after_s → nothing
    rig.vr(vr_pose((0.04, 0, 0)), RG=True)
    assert rig.tick(0.6) == []
    assert rig.state.safety.status().held.startswith("no robot state for 0.6")


def _follow(rig: ControlRig, hand: np.ndarray, ticks: int) -> GatedCommand:
    """Holds the hand at `hand` with the grip pressed for `ticks` ticks, the arm where it was sent."""
    pos = rig.state.commands.command().target.pos
    for _ in range(ticks):
        rig.vr(hand, RG=True)
        rig.robot(pos=pos)
        (c,) = rig.tick()
        pos = c.command.target.pos
    return c


@pytest.mark.parametrize(("played", "back_at"), [(True, (0.0, 0.0, 0.0)), (False, (0.0, 0.0, 0.0)),
                                               (True, (0.0, 0.05, 0.0))])
def test_after_an_outage_a_played_source_resumes_its_motion_and_a_person_is_re_anchored(
        played: bool, back_at: tuple[float, float, float]) -> None:
    """The hand moved 6 cm while the link was down and the arm stood. A played source (a script, a
    recording: `VRSource.keeps_anchor`) means the arm's motion from the grip press: after the restore
    hold the arm goes (step-limited) where that motion says, instead of carrying the 6 cm lag as an
    offset ever after (the --debug demo then missed the cube for a whole run). A person's source is
    re-anchored at the held pose: the arm stays where it stood until the hand moves on; so is a
    played one when the arm comes back 5 cm from where it was (a restarted robot: no catching up)."""
    ramp = [vr_pose((0.01 * k, 0.0, 0.0)) for k in range(1, 7)]  # 1 cm per tick, as a hand moves
    hand = ramp[-1]
    ref = ControlRig()
    ref.engage()
    for pose in ramp:
        _follow(ref, pose, 1)
    expected = _follow(ref, hand, 40).command.target.pos  # the same motion with no outage
    assert distance(expected, HOME) > 0.05

    rig = ControlRig(reanchor_on_restore=not played)
    rig.engage()
    rig.link_down()
    for pose in ramp:
        rig.vr(pose, RG=True)
        assert rig.tick() == []
    back = HOME + np.array(back_at)
    rig.robot(pos=back, epoch=2)  # the link is back; the arm did not move (or a restarted robot's is elsewhere)
    rig.vr(hand, RG=True)
    (held,) = rig.tick()
    assert held.command.interventions == (kinds.HOLD_RESTORE,)
    np.testing.assert_allclose(held.command.target.pos, back)
    end = _follow(rig, hand, 40).command.target.pos
    if played and not any(back_at):
        assert distance(end, expected) < 1e-6, (end, expected)
    else:
        assert distance(end, back) < 1e-6, end


def test_predictive_reference_is_the_last_target_that_left() -> None:
    rig = ControlRig()
    rig.engage()
    rig.vr(vr_pose((0.01, 0, 0)), RG=True)  # hand 1 cm along VR x (robot −y)
    rig.robot()
    (a,) = rig.tick()
    assert a.command.mode is ControlMode.REAL_TIME
    np.testing.assert_allclose(a.command.target.pos, HOME + [0, -0.00375, 0], atol=1e-12)
    rig.vr(vr_pose((0.01, 0, 0)), RG=True)  # the hand stays; the measured state is not refreshed
    (b,) = rig.tick(0.11)  # older than 2 periods: PREDICTIVE
    assert b.command.mode is ControlMode.PREDICTIVE and rig.state.commands.mode() is ControlMode.PREDICTIVE
    # the last sent target stands in for the robot: error −0.01 − (−0.00375) → action −0.03125
    np.testing.assert_allclose(b.command.action[:3], [0, -0.03125, 0], atol=1e-12)
    np.testing.assert_allclose(b.command.target.pos, a.command.target.pos + [0, -0.03125 * 0.075, 0], atol=1e-12)


def test_an_implausible_state_holds_tells_the_operator_and_is_recorded() -> None:
    rig = ControlRig()
    rig.engage()
    rig.robot(pos=HOME + [0.25, 0.35, 0.3])  # 0.53 m in one period
    rig.vr(vr_pose((0.01, 0, 0)), RG=True)
    assert rig.tick() == []
    status = rig.state.safety.status()
    assert "position jumped 0.5" in status.fault and status.held.startswith("robot state not believed")
    (ev,) = [e for e in rig.state.events.recent() if e.kind == "safety_warning"]
    assert "the arm holds" in ev.message
    records = rig.state.safety.take()
    assert [r.kind for r in records] == [kinds.IMPLAUSIBLE_STATE] and records[0].source == "robot_state"
    assert rig.state.counters.snapshot()["safety_implausible_state"] == 1
    for _ in range(10):
        rig.robot(pos=HOME + [0.25, 0.35, 0.3])
        rig.vr(vr_pose((0.01, 0, 0)), RG=True)
        assert rig.tick() == []
    rig.robot(pos=HOME)  # the truth comes back
    rig.vr(vr_pose((0.01, 0, 0)), RG=True)
    (c,) = rig.tick()
    assert not c.command.engaged and c.command.interventions == (kinds.HOLD_RESTORE,)
    np.testing.assert_allclose(c.command.target.pos, HOME)
    assert [r.kind for r in rig.state.safety.take()] == [kinds.STATE_PLAUSIBLE, kinds.HOLD_RESTORE]


def test_outage_with_the_grip_released_returns_to_the_measured_pose_not_an_extrapolation() -> None:
    """The third regression, on virtual time: targets extrapolated (PREDICTIVE) while the link
    fails are never held or sent when it returns; the arm holds where it is measured."""
    rig = ControlRig()
    c = rig.engage()
    sent = [c]
    for k in range(1, 4):  # moving: 2 cm per tick
        rig.vr(vr_pose((0.02 * k, 0, 0)), RG=True)
        rig.robot(pos=sent[-1].command.target.pos)
        sent += rig.tick()
    arm = np.asarray(sent[-1].command.target.pos)
    for k in range(4, 10):  # the robot stops answering: PREDICTIVE extrapolation for ~0.3 s
        rig.vr(vr_pose((0.02 * k, 0, 0)), RG=True)
        sent += rig.tick()
    extrapolated = np.asarray(sent[-1].command.target.pos)
    assert distance(extrapolated, arm) > 0.03
    rig.link_down()
    rig.vr(vr_pose((0.2, 0, 0)))  # grip released during the outage
    assert rig.tick(0.5) == []
    rig.robot(pos=arm, epoch=2)  # the link returns: the arm never reached the extrapolated targets
    rig.vr(vr_pose((0.2, 0, 0)))
    (c,) = rig.tick()
    np.testing.assert_allclose(c.command.target.pos, arm)
    for _ in range(10):
        rig.vr(vr_pose((0.2, 0, 0)))
        rig.robot(pos=arm)
        (c,) = rig.tick()
        np.testing.assert_allclose(c.command.target.pos, arm)


# ------------------------------------------------------------------------------------------------
# Properties over arbitrary sequences
# ------------------------------------------------------------------------------------------------

bad = st.sampled_from([math.nan, math.inf, -math.inf, 1e9, -1e300])
coord = st.one_of(st.floats(-0.5, 1.2), bad)


@st.composite
def robot_pos(draw) -> tuple[float, float, float]:
    kind = draw(st.sampled_from(["box", "box", "box", "near", "any"]))
    if kind == "box":
        return tuple(draw(st.floats(lo, hi)) for lo, hi in zip(LO, HI))
    if kind == "near":
        return tuple(draw(st.floats(lo - 0.35, hi + 0.35)) for lo, hi in zip(LO, HI))
    return tuple(draw(coord) for _ in range(3))


@st.composite
def robot_quat(draw) -> tuple[float, ...]:
    kind = draw(st.sampled_from(["down", "down", "unit", "scaled", "zero", "nan"]))
    if kind == "down":
        return tuple(DOWN)
    if kind == "zero":
        return (0.0, 0.0, 0.0, 0.0)
    if kind == "nan":
        return (math.nan, 0.0, 0.0, 1.0)
    q = R.from_rotvec(draw(st.lists(st.floats(-3, 3), min_size=3, max_size=3))).as_quat()
    return tuple(q * (1.0 if kind == "unit" else draw(st.floats(0.5, 2.0))))


@st.composite
def hand_pose(draw) -> np.ndarray:
    kind = draw(st.sampled_from(["small", "small", "small", "jump", "garbage"]))
    if kind == "garbage":
        return np.array(draw(st.lists(st.one_of(st.floats(-2, 2), bad), min_size=16, max_size=16))).reshape(4, 4)
    scale = 0.05 if kind == "small" else 2.5
    p = np.eye(4)
    p[:3, :3] = R.from_rotvec(draw(st.lists(st.floats(-0.3, 0.3), min_size=3, max_size=3))).as_matrix()
    p[:3, 3] = draw(st.lists(st.floats(-scale, scale), min_size=3, max_size=3))
    return p


vr_step = st.one_of(
    st.none(),
    st.tuples(hand_pose(), st.sampled_from([True, True, True, False]), st.floats(0, 1),
              st.sampled_from([0.0, 0.0, 0.0, 0.1, 0.7])),
)
robot_step = st.one_of(
    st.none(),
    st.tuples(
        st.sampled_from(["follow", "follow", "walk", "walk", "arbitrary"]),
        robot_pos(),
        st.lists(st.floats(-0.01, 0.01), min_size=3, max_size=3),  # walk: a small move
        st.one_of(st.none(), robot_quat()),  # None: the orientation of the reference
        st.sampled_from([0.0, 0.0, 0.0, 0.03, 0.2, 0.8]),  # age when it arrives, s
        st.sampled_from([True, True, True, True, False]),  # link up
    ),
)
step = st.tuples(vr_step, robot_step, st.sampled_from([None] * 8 + ["down", "new_epoch"]),
                 st.sampled_from([0.0, 1.0, 1.0, 1.0, 1.0, 3.0, 12.0]))


def _reported(rig: ControlRig, kind: str, arbitrary, delta, quat) -> tuple:
    """The state a step reports: follow = the last target sent, walk = a small move from it."""
    last = rig.thread.gate.last_sent
    ref = rig.thread.check.believed
    if kind == "arbitrary" or (last is None and ref is None):
        return arbitrary, quat if quat is not None else tuple(DOWN)
    if last is not None:
        pos, q = np.asarray(last[0]), np.asarray(last[1])
    else:
        pos, q = np.asarray(ref.state.pos), np.asarray(ref.state.quat)
    if kind == "walk":
        pos = pos + np.asarray(delta)
    return tuple(pos), tuple(q) if quat is None else quat


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step, min_size=5, max_size=60), st.sampled_from([20.0, 40.0]))
def test_every_command_that_leaves_is_finite_in_the_box_step_limited_and_still_without_the_deadman(steps, hz) -> None:
    rig = ControlRig(hz=hz)
    step_m, step_rad = SafetyConfig().step_limits(hz)
    prev: GatedCommand | None = None
    broken = True  # no command yet, or the robot was not OK / the link epoch changed since
    believed: list[tuple[np.ndarray, np.ndarray]] = []
    grip = False
    vr_t = -math.inf
    for vr, robot, extra, dt in steps:
        if vr is not None:
            pose, g, trig, age = vr
            rig.vr(pose, age=age, RG=g, rightTrig=trig)
            grip, vr_t = g, rig.now - age
        if robot is not None:
            kind, arbitrary, delta, quat, age, up = robot
            pos, q = _reported(rig, kind, arbitrary, delta, quat)
            rig.robot(pos, q, age=age, up=up)
        if extra == "down":
            rig.link_down()
        elif extra == "new_epoch":
            obs = rig.state.robot.observation()
            rig.robot(HOME if obs is None else obs.state.pos, DOWN, epoch=rig.epoch + 1)
        out = rig.tick(dt / hz)
        b = rig.thread.check.believed
        if b is not None and (not believed or believed[-1][0] is not b.state.pos):
            believed.append((b.state.pos, np.asarray(b.state.quat) / np.linalg.norm(b.state.quat)))
        if not out:
            status = rig.state.safety.status()
            if status.held and not status.held.startswith(("not engaged", "outside")):
                broken = True  # robot not OK: the gate forgot the previous target
            continue
        (g_cmd,) = out
        cmd = g_cmd.command
        event("engaged command" if cmd.engaged else "held command")
        t = cmd.target
        pos, quat = np.asarray(t.pos), np.asarray(t.quat)
        # finite, unit, inside the box, gripper in range
        assert np.isfinite(pos).all() and np.isfinite(quat).all() and math.isfinite(t.gripper)
        assert abs(np.linalg.norm(quat) - 1.0) < 1e-9 and -1.0 <= t.gripper <= 1.0
        assert all(lo - 1e-9 <= p <= hi + 1e-9 for p, lo, hi in zip(pos, LO, HI)), pos
        # step limits from the previous command that left (or, after a break, the measured pose)
        restart = broken or prev is None or g_cmd.link_epoch != prev.link_epoch
        if restart:
            assert b is not None
            base_pos, base_quat = np.asarray(b.state.pos), np.asarray(b.state.quat) / np.linalg.norm(b.state.quat)
        else:
            base_pos, base_quat = np.asarray(prev.command.target.pos), np.asarray(prev.command.target.quat)
        assert distance(pos, base_pos) <= step_m * (1 + 1e-9) + 1e-12
        assert angle_between(quat, base_quat) <= step_rad + 1e-7
        # no motion while the deadman is released: not engaged, and the target only goes toward
        # (clamped) poses the arm was measured at
        sample_fresh = rig.now - vr_t <= rig.policy.config.link_timeout_s
        if not grip or not sample_fresh:
            assert not cmd.engaged and not cmd.action.any()
        if not cmd.engaged:
            assert any(
                _toward(base_pos, pos, np.array(clamp_box(m_pos, LO, HI))) and _turns_toward(base_quat, quat, m_quat)
                for m_pos, m_quat in believed
            ), "a held target that is not on the way to a measured pose"
        prev, broken = g_cmd, False


def _toward(start: np.ndarray, t: np.ndarray, goal: np.ndarray) -> bool:
    """`t` lies on the segment from `start` to `goal`."""
    return distance(start, t) + distance(t, goal) <= distance(start, goal) + 1e-9


def _turns_toward(start: np.ndarray, q: np.ndarray, goal: np.ndarray) -> bool:
    return angle_between(q, goal) <= angle_between(start, goal) + 1e-7


@pytest.mark.parametrize("hz", [20.0, 100.0])
def test_a_still_hand_with_the_grip_released_sends_the_same_target_every_tick(hz: float) -> None:
    rig = ControlRig(hz=hz)
    rig.robot()
    targets = []
    for k in range(int(hz)):  # one second; the measured pose wanders by sensor noise
        rig.vr(I4)
        rig.robot(pos=HOME + np.random.default_rng(k).normal(0, 1e-4, 3))
        targets += [c.command.target.pos for c in rig.tick()]
    settled = np.array(targets[int(0.5 * hz):])
    assert len(settled) > 0 and np.ptp(settled, axis=0).max() == 0.0  # latched: not one jitter
