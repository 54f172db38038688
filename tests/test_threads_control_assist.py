"""The control thread with VLA assist, on virtual time: the blend before the gate, α's ramp and
drops, the deadman, the gripper, the toggle button — and, whatever the policy returns, commands
that stay finite, inside the box, within the step limits and still while the grip is released."""

from __future__ import annotations

import math
import queue
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from oculus_server.assist.blender import AssistBlender
from oculus_server.assist.channel import AssistChannel
from oculus_server.assist.config import AssistConfig
from oculus_server.policy import PolicyConfig, VRPolicy
from oculus_server.robot_link import RobotLink
from oculus_server.safety.config import SafetyConfig
from oculus_server.safety.gate import GatedCommand
from oculus_server.safety.pose import distance
from oculus_server.state import SharedState
from oculus_server.threads.base import Supervisor
from oculus_server.threads.control import ControlThread
from robot_formats.action_space import action_to_target, target_to_action
from robot_formats.recording.records import AssistAction, AssistStatus, VRSample
from robot_formats.rotations import angle_between
from tests.control_fakes import DOWN, HOME, observation
from tests.fakes.clock import FakeClock
from tests.shared_parts import control_parts

I4 = np.eye(4)
LO = (0.2, -0.4, 0.05)
HI = (0.75, 0.4, 0.7)
CONNECTED = AssistStatus(link="connected", model="m", url="ws://x:1/v1/stream")


def hand(pos=(0.0, 0.0, 0.0)) -> np.ndarray:
    p = np.eye(4)
    p[:3, 3] = pos
    return p


DEFAULT = AssistConfig(model="m", instruction="go", toggle_button="X")


class AssistRig:
    """A `ControlThread` (with or without an `AssistBlender`) stepped by hand on virtual time."""

    def __init__(self, hz: float = 20.0, assist: AssistConfig | None = DEFAULT) -> None:
        self.hz = hz
        self.clock = FakeClock(start=100.0)
        self.state = SharedState()
        self.commands: queue.Queue = queue.Queue(maxsize=100_000)
        self.policy = VRPolicy(PolicyConfig(control_hz=hz))
        self.events: list[tuple[str, str]] = []
        self.blender = None
        if assist is not None:
            pc = self.policy.config
            self.blender = AssistBlender(assist, self.state.assist, hz, pc.max_lin_delta, pc.max_rot_delta,
                                         events=lambda m, s: self.events.append((m, s)),
                                         wall=lambda: 1.7e9 + self.clock.now())
        self.thread = ControlThread(
            self.policy, self.commands, Supervisor(), **control_parts(self.state), hz=hz,
            clock=self.clock, wall=lambda: 1.7e9 + self.clock.now(), assist=self.blender,
        )
        self.vr_seq = 0
        self.action_seq = 0

    @property
    def now(self) -> float:
        return self.clock.now()

    def vr(self, pose=I4, age: float = 0.0, **buttons) -> None:
        self.vr_seq += 1
        self.state.vr.set_sample(VRSample({"r": np.asarray(pose, dtype=float)}, buttons, self.now - age, self.vr_seq))

    def robot(self, pos=HOME, quat=DOWN, age: float = 0.0, epoch: int = 1) -> None:
        self.state.robot.set_reply(observation(pos, quat, self.now - age, epoch), RobotLink(up=True, epoch=epoch))

    def link(self, status: AssistStatus = CONNECTED) -> None:
        self.state.assist.set_status(status)

    def act(self, action: Sequence[float], score: float = 1.0, age: float = 0.0,
            seen: tuple[Sequence[float], Sequence[float]] | None = None) -> None:
        """A policy action received `age` s ago, answering the pose `seen` (None: the moment's)."""
        self.state.assist.publish_action(AssistAction(
            seq=self.action_seq, frame_id=self.action_seq, action=np.array(action, dtype=float),
            received_at=self.now - age, received_wall=1.7e9 + self.now - age, safety_score=score, latency_ms=5.0,
            seen_pos=None if seen is None else tuple(seen[0]), seen_quat=None if seen is None else tuple(seen[1]),
        ))
        self.action_seq += 1

    def tick(self, dt: float | None = None) -> GatedCommand | None:
        self.clock.advance(1.0 / self.hz if dt is None else dt)
        self.thread.step()
        out = []
        while not self.commands.empty():
            out.append(self.commands.get_nowait())
        assert len(out) <= 1
        return out[0] if out else None

    def engage(self) -> GatedCommand:
        """Grip pressed at the identity pose after a release; returns the first engaged command."""
        self.robot()
        self.vr(I4)
        self.tick()
        self.vr(I4, RG=True)
        self.robot()
        c = self.tick()
        assert c is not None and c.command.engaged
        return c

    def blends(self) -> list:
        tick = self.state.assist.take()
        return list(tick.blends) if tick else []


def same_command(a, b) -> bool:
    """Two `RobotCommand`s are equal field by field (arrays compared exactly)."""
    return (a.seq, a.created, a.mode, a.engaged, a.vr_seq, a.source, a.interventions) == (
        b.seq, b.created, b.mode, b.engaged, b.vr_seq, b.source, b.interventions) and np.array_equal(
        a.action, b.action) and np.array_equal(a.target.pos, b.target.pos) and np.array_equal(
        a.target.quat, b.target.quat) and a.target.gripper == b.target.gripper and a.target.reset == b.target.reset


REACH = (0.8, 0.0, -0.4, 0.0, 0.0, 0.0, 1.0)  # toward +x and down, gripper closed


def test_the_blend_is_the_weighted_average_and_alpha_ramps_by_a_tenth() -> None:
    rig = AssistRig()
    rig.link()
    rig.engage()
    rig.blends()
    alphas = []
    for k in range(6):
        rig.vr(hand((0.004 * k, 0.0, 0.0)), RG=True)  # the operator moves a little (robot −y)
        rig.robot()
        rig.act(REACH, seen=(HOME, DOWN))
        c = rig.tick()
        assert c is not None
        (rec,) = rig.blends()
        alphas.append(rec.alpha)
        assert rec.state == "on" and rec.command_seq == c.command.seq and rec.engaged
        op, pol = np.array(rec.operator), np.array(rec.policy)
        np.testing.assert_allclose(rec.blended[:6], rec.alpha * pol[:6] + (1 - rec.alpha) * op[:6], atol=1e-12)
        np.testing.assert_allclose(c.command.action[:6], rec.blended[:6], atol=1e-12)
        want = action_to_target(HOME, DOWN, rec.blended, 0.075, 0.15)
        assert want is not None
        np.testing.assert_allclose(c.command.target.pos, want.pos, atol=1e-9)  # inside the box, one small step
        assert c.command.source == "assist" and c.command.target.gripper == -1.0  # the operator's gripper
    assert alphas == pytest.approx([0.1, 0.2, 0.3, 0.3, 0.3, 0.3])


def test_drive_mode_gives_the_policy_the_arm_and_its_target_is_kept_however_late() -> None:
    rig = AssistRig(assist=AssistConfig(model="m", instruction="go", toggle_button="X", mode="drive"))
    rig.link()
    rig.engage()
    arm = np.array(HOME)
    goal = np.array(HOME) + [0.05, 0.0, -0.03]
    action = list(target_to_action(HOME, DOWN, goal, DOWN, None, 0.075, 0.15)) + [1.0]  # seen at HOME
    for _ in range(30):
        rig.vr(I4, RG=True)
        rig.robot(pos=arm)
        rig.act(action, seen=(HOME, DOWN))  # the same answer to the same old frame, again and again
        c = rig.tick()
        assert c is not None
        arm = np.array(c.command.target.pos)  # the arm reaches each target
    np.testing.assert_allclose(arm, goal, atol=0.005)  # converges on the goal: no overshoot
    (rec,) = rig.blends()[-1:]
    assert rec.alpha == 1.0 and rec.alpha_target == 1.0


@pytest.mark.parametrize("what", ["stale", "link", "score", "nan", "release", "toggle"])
def test_alpha_drops_to_zero_at_once_and_the_operator_carries_on_from_where_the_arm_is(what: str) -> None:
    rig = AssistRig()
    rig.link()
    rig.engage()
    for _ in range(5):
        rig.vr(I4, RG=True)
        rig.robot()
        rig.act(REACH, seen=(HOME, DOWN))
        rig.tick()
    rig.blends()
    assert rig.blender is not None and rig.blender.alpha == pytest.approx(0.3)
    grip = what != "release"
    if what == "stale":
        rig.act(REACH, seen=(HOME, DOWN), age=2.01 / rig.hz)
    elif what == "link":
        rig.link(AssistStatus(link="reconnecting", model="m", detail="connection lost"))
        rig.act(REACH, seen=(HOME, DOWN))
    elif what == "score":
        rig.act(REACH, seen=(HOME, DOWN), score=0.49)
    elif what == "nan":
        rig.act([math.nan, 0, 0, 0, 0, 0, 0], seen=(HOME, DOWN))
    else:
        rig.act(REACH, seen=(HOME, DOWN))
    buttons = {"RG": grip, "X": what == "toggle"}
    rig.vr(I4, **buttons)
    rig.robot()
    c = rig.tick()
    (rec,) = rig.blends()
    assert rec.alpha == 0.0 and c is not None
    assert not c.command.engaged and not c.command.action.any()  # one hold: the policy let go
    np.testing.assert_allclose(c.command.target.pos, HOME)
    assert rec.state == {"stale": "stale", "link": "no_link", "score": "low_score", "nan": "invalid",
                         "release": "released", "toggle": "off"}[what]
    if grip:
        assert rec.reanchor
        rig.vr(I4, RG=True)
        rig.robot()
        c = rig.tick()
        assert c is not None and c.command.engaged and c.command.source == "policy"  # operator only, no lunge
        np.testing.assert_allclose(c.command.target.pos, HOME, atol=1e-9)


def test_a_released_grip_gives_the_policy_no_say_whatever_it_sends() -> None:
    with_assist, without = AssistRig(), AssistRig(assist=None)
    rng = np.random.default_rng(3)
    for k in range(60):
        offset = rng.normal(0, 0.01, 3) if k % 7 else (0, 0, 0)
        for rig in (with_assist, without):
            rig.link()
            rig.vr(hand(offset), RG=False)
            rig.robot(pos=HOME + [0.001 * (k % 5), 0, 0])
        with_assist.act(rng.uniform(-5, 5, 7), seen=(HOME, DOWN), score=1.0)
        a, b = with_assist.tick(), without.tick()
        assert (a is None) == (b is None)
        if a is not None and b is not None:
            assert same_command(a.command, b.command)  # the same command, bit for bit
    assert all(r.alpha == 0.0 and r.state == "released" for r in with_assist.blends())


def test_the_gripper_is_never_averaged_and_can_be_handed_over() -> None:
    for owner, want in (("operator", -1.0), ("policy", 1.0)):
        rig = AssistRig(assist=AssistConfig(model="m", instruction="go", toggle_button="X", gripper=owner))
        rig.link()
        rig.engage()
        for _ in range(3):
            rig.vr(I4, RG=True, rightTrig=0.0)
            rig.robot()
            rig.act(REACH, seen=(HOME, DOWN))
            c = rig.tick()
        assert c is not None and c.command.target.gripper == want
        if owner == "policy":  # briefly unusable: the last gripper target stands
            rig.vr(I4, RG=True)
            rig.robot()
            rig.act(REACH, seen=(HOME, DOWN), age=1.0)
            rig.tick()  # the hold tick
            rig.vr(I4, RG=True)
            rig.robot()
            c = rig.tick()
            assert c is not None and c.command.engaged and c.command.target.gripper == 1.0
            assert rig.blends()[-1].gripper_source == "keep"


def test_the_button_switches_assist_off_and_on_and_says_so() -> None:
    rig = AssistRig()
    rig.link()
    rig.engage()
    presses = [False, True, True, False, False, True, False]
    enabled = []
    for x in presses:
        rig.vr(I4, RG=True, X=x)
        rig.robot()
        rig.act(REACH, seen=(HOME, DOWN))
        rig.tick()
        assert rig.blender is not None
        enabled.append(rig.blender.enabled)
    assert enabled == [True, False, False, False, False, True, True]
    switched = [m for m, _ in rig.events if "switched" in m]
    assert switched == ["assist switched off (X pressed)", "assist switched on (X pressed)"]


def test_a_failure_inside_the_blender_leaves_the_operator_in_charge() -> None:
    class Broken(AssistChannel):
        def action(self):
            raise RuntimeError("boom")

    rig = AssistRig()
    rig.state.assist = Broken()
    assert rig.blender is not None
    rig.blender.channel = rig.state.assist
    rig.link()
    c = rig.engage()
    assert c.command.engaged and c.command.source == "policy" and rig.blender.failures >= 1
    assert any("blending failed (RuntimeError: boom)" in m for m, _ in rig.events)


def test_policy_target_in_the_rig_is_the_pose_asked_for() -> None:
    """Sanity of the rig's own helper: the action built from a goal points at that goal."""
    goal = np.array(HOME) + [0.02, 0.01, 0.0]
    a = list(target_to_action(HOME, DOWN, goal, DOWN, None, 0.075, 0.15)) + [0.0]
    t = action_to_target(HOME, DOWN, a)
    assert t is not None
    np.testing.assert_allclose(t.pos, goal, atol=1e-12)


# ------------------------------------------------------------------------------------------------
# Whatever the policy returns
# ------------------------------------------------------------------------------------------------

bad = st.sampled_from([math.nan, math.inf, -math.inf, 1e9, -1e300])
value = st.one_of(st.floats(-3, 3), bad)
good_policy = st.tuples(st.lists(st.floats(-3, 3), min_size=7, max_size=7), st.floats(0.5, 1.0), st.just(0.0),
                        st.just("seen"), st.just("connected"))
policy_step = st.one_of(
    st.none(),
    *[good_policy] * 4,
    *[st.tuples(
        st.one_of(*[st.lists(st.floats(-3, 3), min_size=7, max_size=7)] * 3,
                  st.lists(value, min_size=7, max_size=7)),  # the action: mostly finite, some not
        st.one_of(st.floats(0, 1), st.floats(0, 1), st.floats(0, 1), bad),  # score
        st.sampled_from([0.0, 0.0, 0.02, 0.09, 0.11, 3.0, -1.0]),  # age, s
        st.sampled_from(["seen", "seen", "none", "far", "nan"]),  # the pose it answers
        st.sampled_from(["connected"] * 6 + ["reconnecting", "failed"]),
    )] * 2,
)
step = st.tuples(
    st.sampled_from([True, True, True, True, False]),  # grip
    st.lists(st.floats(-0.03, 0.03), min_size=3, max_size=3),  # hand offset
    st.sampled_from([False] * 9 + [True]),  # X (toggle)
    policy_step,
    st.sampled_from(["follow", "follow", "follow", "jump"]),  # the measured pose
    st.sampled_from([1.0, 1.0, 1.0, 3.0]),  # periods elapsed
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step, min_size=5, max_size=50), st.sampled_from([20.0, 40.0]),
       st.sampled_from(["blend", "drive"]), st.sampled_from(["operator", "policy"]))
def test_whatever_the_policy_returns_commands_are_finite_in_the_box_and_step_limited(steps, hz, mode, gripper) -> None:
    rig = AssistRig(hz=hz, assist=AssistConfig(model="m", instruction="go", toggle_button="X", mode=mode,
                                               gripper=gripper, min_score=0.3))
    step_m, step_rad = SafetyConfig().step_limits(hz)
    rig.link()
    rig.engage()
    rig.blends()
    prev = None
    arm = np.array(HOME)
    for grip, offset, x, pol, robot, periods in steps:
        if pol is not None:
            action, score, age, seen, link = pol
            rig.link(AssistStatus(link=link, model="m"))
            seen_pose = {"seen": (arm, DOWN), "none": None, "far": (arm + [3.0, -2.0, 5.0], DOWN),
                         "nan": ((math.nan, 0.0, 0.0), DOWN)}[seen]
            rig.act(action, score=score, age=age, seen=seen_pose)  # type: ignore[arg-type]
        rig.vr(hand(offset), RG=grip, X=x)
        if robot == "jump":
            arm = arm + [0.002, -0.002, 0.001]
        rig.robot(pos=arm)
        g = rig.tick(periods / hz)
        (rec,) = rig.blends()
        if g is None:
            prev = None
            continue
        cmd = g.command
        pos, quat = np.asarray(cmd.target.pos), np.asarray(cmd.target.quat)
        assert np.isfinite(pos).all() and np.isfinite(quat).all() and math.isfinite(cmd.target.gripper)
        assert np.isfinite(cmd.action).all() and np.all(np.abs(cmd.action) <= 1.0)
        assert all(lo - 1e-9 <= p <= hi + 1e-9 for p, lo, hi in zip(pos, LO, HI)), pos
        base = prev.command.target if prev is not None else None
        if base is not None:
            assert distance(pos, base.pos) <= step_m * (1 + 1e-9) + 1e-12
            assert angle_between(quat, base.quat) <= step_rad + 1e-7
        if not grip:  # deadman released: no policy influence at all
            assert not cmd.engaged and not cmd.action.any() and cmd.source != "assist" and rec.alpha == 0.0
        assert 0.0 <= rec.alpha <= rec.alpha_target
        if rec.alpha > 0:
            assert rec.state == "on" and cmd.source == "assist"
            event("the policy moved the arm")
        prev = g
        arm = np.array(pos)  # the arm follows
