"""CommandGate: box, step limits, refusals, the hold latch, restores, the sealed GatedCommand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation as R

from oculus_server.errors import SafetyError
from oculus_server.safety import kinds
from oculus_server.safety.config import SafetyConfig
from oculus_server.safety.gate import (
    CommandGate,
    GatedCommand,
    Proposal,
    RobotView,
    check_gated,
)
from robot_formats.recording.records import ControlMode, RobotCommand
from tests.control_fakes import DOWN, HOME, move, observation, rest, view

LO = np.array([0.2, -0.4, 0.05])
HI = np.array([0.75, 0.4, 0.7])


def started_gate(hz: float = 20.0, at=HOME, **safety) -> tuple[CommandGate, float]:
    """A gate past its first (restore) command, at the measured pose `at`; returns (gate, now)."""
    gate = CommandGate(SafetyConfig(**safety), hz, wall=lambda: 1.7e9)
    first = gate.admit(move(at), view(observation(at, t_recv=0.0)), 0.0)
    assert first.command is not None and first.held and first.reanchor
    assert [r.kind for r in first.records] == [kinds.HOLD_RESTORE]
    return gate, 0.0


def admit(gate: CommandGate, proposal: Proposal, measured=HOME, t: float = 0.05, epoch: int = 1, quat=DOWN):
    return gate.admit(proposal, view(observation(measured, quat, t_recv=t, epoch=epoch)), t)


def test_step_limits_scale_with_the_control_rate() -> None:
    cfg = SafetyConfig()
    assert cfg.step_limits(20.0) == pytest.approx((0.04, 0.2))
    assert cfg.step_limits(40.0) == pytest.approx((0.02, 0.1))
    assert cfg.step_limits(100.0) == pytest.approx((0.008, 0.04))
    assert cfg.max_speed_m_s == pytest.approx(0.8)


def test_first_command_holds_the_measured_pose_then_the_arm_moves() -> None:
    gate = CommandGate(SafetyConfig(), 20.0)
    r0 = gate.admit(move(HOME + [0.01, 0, 0]), view(observation(HOME)), 0.0)
    assert r0.command is not None and r0.held and r0.reanchor and r0.why_held == "restore"
    c0 = r0.command.command
    np.testing.assert_allclose(c0.target.pos, HOME)
    assert not c0.engaged and c0.source == "hold" and c0.interventions == (kinds.HOLD_RESTORE,)
    assert not c0.action.any()
    r1 = admit(gate, move(HOME + [0.01, 0, 0]))
    assert not r1.held and not r1.reanchor and r1.records == ()
    c1 = r1.command.command
    np.testing.assert_allclose(c1.target.pos, HOME + [0.01, 0, 0])
    assert c1.engaged and c1.source == "policy" and c1.seq == c0.seq + 1 and c1.interventions == ()


def test_target_outside_the_box_is_clamped_and_recorded() -> None:
    gate, _ = started_gate(at=[0.74, 0.0, 0.3])
    r = admit(gate, move([0.9, 0.0, 0.3]), measured=[0.74, 0.0, 0.3])
    cmd = r.command.command
    np.testing.assert_allclose(cmd.target.pos, [0.75, 0.0, 0.3])
    (rec,) = r.records
    assert rec.kind == kinds.BOX and rec.amount == pytest.approx(0.15)
    assert rec.requested == pytest.approx((0.9, 0.0, 0.3)) and rec.sent == pytest.approx((0.75, 0.0, 0.3))
    assert rec.command_seq == cmd.seq and "clamped into the workspace box" in rec.message
    assert cmd.interventions == (kinds.BOX,)


@pytest.mark.parametrize("hz, step", [(20.0, 0.04), (40.0, 0.02), (100.0, 0.008)])
def test_position_step_from_the_previous_sent_target_is_limited(hz: float, step: float) -> None:
    gate, _ = started_gate(hz)
    goal = HOME + [0.3, 0.1, 0.0]
    prev = HOME
    for k in range(3):
        r = admit(gate, move(goal), t=0.05 * (k + 1))
        pos = np.asarray(r.command.command.target.pos)
        assert np.linalg.norm(pos - prev) == pytest.approx(step)
        direction = (goal - prev) / np.linalg.norm(goal - prev)
        np.testing.assert_allclose((pos - prev) / step, direction, atol=1e-12)
        assert [x.kind for x in r.records] == [kinds.STEP_POS]
        assert r.records[0].amount == pytest.approx(np.linalg.norm(goal - prev) - step)
        prev = pos


def test_rotation_step_is_limited_by_slerp_toward_the_goal() -> None:
    gate, _ = started_gate()
    goal = (R.from_rotvec([0.0, 0.0, 1.0]) * R.from_quat(DOWN)).as_quat()
    r = admit(gate, move(HOME, goal))
    q = r.command.command.target.quat
    assert (R.from_quat(q) * R.from_quat(DOWN).inv()).magnitude() == pytest.approx(0.2)
    # on the way: the rest of the turn is about the same axis
    rest_turn = R.from_quat(goal) * R.from_quat(q).inv()
    assert rest_turn.magnitude() == pytest.approx(0.8)
    np.testing.assert_allclose(rest_turn.as_rotvec() / 0.8, [0, 0, 1], atol=1e-9)
    assert [x.kind for x in r.records] == [kinds.STEP_ROT]


@pytest.mark.parametrize(
    "pos, quat, kind",
    [
        ([np.nan, 0.0, 0.3], DOWN, kinds.REFUSED_NONFINITE),
        ([0.5, np.inf, 0.3], DOWN, kinds.REFUSED_NONFINITE),
        ([0.5, 0.0, 0.3], [np.nan, 0, 0, 1], kinds.REFUSED_NONFINITE),
        ([0.5, 0.0, 0.3], [0.0, 0.0, 0.0, 0.0], kinds.REFUSED_QUAT),
        ([0.5, 0.0], DOWN, kinds.REFUSED_NONFINITE),
    ],
)
def test_unusable_proposals_are_refused_and_the_arm_holds(pos, quat, kind) -> None:
    gate, _ = started_gate()
    measured = HOME + [0.005, 0, 0]
    r = gate.admit(Proposal("assist", True, pos, quat, -1.0), view(observation(measured, t_recv=0.05)), 0.05)
    assert r.held and r.reanchor and r.why_held == "refused"
    cmd = r.command.command
    assert not cmd.engaged and cmd.source == "assist"
    np.testing.assert_allclose(cmd.target.pos, measured)  # held at the measured pose
    assert r.records[0].kind == kind and "refused" in r.records[0].message
    assert np.isfinite(cmd.target.pos).all() and np.isfinite(cmd.target.quat).all()


def test_a_non_unit_quaternion_is_renormalised_and_noted() -> None:
    gate, _ = started_gate()
    r = admit(gate, move(HOME, 3.0 * DOWN))
    np.testing.assert_allclose(r.command.command.target.quat, DOWN)
    assert [x.kind for x in r.records] == [kinds.QUAT]


def test_hold_follows_the_arm_to_rest_then_latches_so_it_cannot_creep() -> None:
    gate, _ = started_gate(hold_settle_s=0.25)
    admit(gate, move(HOME + [0.03, 0, 0]), t=0.05)  # engaged, moving
    # grip released at t=0.10: the held target is the measured pose, never the last target
    r = admit(gate, rest(), measured=HOME + [0.02, 0, 0], t=0.10)
    assert r.held and r.why_held == "not engaged"
    np.testing.assert_allclose(r.command.command.target.pos, HOME + [0.02, 0, 0])
    # while settling (states received < 0.25 s after the release) it follows the measured pose
    r = admit(gate, rest(), measured=HOME + [0.025, 0, 0], t=0.30)
    np.testing.assert_allclose(r.command.command.target.pos, HOME + [0.025, 0, 0])
    # the first state received 0.25 s after the release latches the hold ...
    r = admit(gate, rest(), measured=HOME + [0.026, 0, 0], t=0.36)
    np.testing.assert_allclose(r.command.command.target.pos, HOME + [0.026, 0, 0])
    # ... and a sagging measurement later does not drag the target down with it
    for k in range(20):
        sag = HOME + [0.026, 0, -0.001 * (k + 1)]
        r = admit(gate, rest(), measured=sag, t=0.40 + 0.05 * k)
        np.testing.assert_allclose(r.command.command.target.pos, HOME + [0.026, 0, 0])
    # engaging again releases the latch
    r = admit(gate, move(HOME + [0.03, 0, 0]), measured=HOME + [0.026, 0, -0.02], t=1.5)
    assert r.command.command.engaged


def test_nothing_leaves_while_the_robot_is_not_ok_and_the_next_command_holds_the_fresh_pose() -> None:
    gate, _ = started_gate()
    admit(gate, move(HOME + [0.03, 0, 0]), t=0.05)
    down = gate.admit(move(HOME + [0.06, 0, 0]), view(observation(HOME, t_recv=0.1), ok=False), 0.1)
    assert down.command is None and down.why_held == "down" and gate.last_sent is None
    fresh = HOME + [0.0, 0.2, 0.0]  # the arm is somewhere else now
    r = admit(gate, move(HOME + [0.06, 0, 0]), measured=fresh, t=1.0)
    assert r.held and r.reanchor and [x.kind for x in r.records] == [kinds.HOLD_RESTORE]
    np.testing.assert_allclose(r.command.command.target.pos, fresh)


def test_a_new_link_epoch_is_a_restore_even_without_a_bad_tick_in_between() -> None:
    gate, _ = started_gate()
    admit(gate, move(HOME + [0.03, 0, 0]), t=0.05)
    r = admit(gate, move(HOME + [0.06, 0, 0]), measured=HOME + [0.1, 0, 0], t=0.1, epoch=2)
    assert r.held and r.command.link_epoch == 2
    np.testing.assert_allclose(r.command.command.target.pos, HOME + [0.1, 0, 0])


def test_an_arm_outside_the_box_by_more_than_a_step_gets_nothing() -> None:
    gate = CommandGate(SafetyConfig(), 20.0)
    far = [0.95, 0.0, 0.3]  # 0.2 m outside in x (still a believable state)
    r = gate.admit(rest(), view(observation(far)), 0.0)
    assert r.command is None and r.why_held == "outside box"
    (rec,) = r.records
    assert rec.kind == kinds.OUTSIDE_BOX and rec.amount == pytest.approx(0.2) and "nothing is sent" in rec.message
    r = gate.admit(rest(), view(observation(far, t_recv=0.05)), 0.05)
    assert r.command is None and r.records == ()  # reported once per episode of it
    near = [0.78, 0.0, 0.3]  # 3 cm outside: one step brings it in
    r = gate.admit(rest(), view(observation(near, t_recv=0.1)), 0.1)
    np.testing.assert_allclose(r.command.command.target.pos, [0.75, 0.0, 0.3])
    assert [x.kind for x in r.records] == [kinds.BOX]


def test_gripper_nan_keeps_the_last_inf_is_noted_and_out_of_range_is_clipped() -> None:
    gate, _ = started_gate()
    assert admit(gate, move(HOME, gripper=1.0)).command.command.target.gripper == 1.0
    r = admit(gate, move(HOME, gripper=math.nan))
    assert r.command.command.target.gripper == 1.0 and r.records == ()
    r = admit(gate, move(HOME, gripper=math.inf))
    assert r.command.command.target.gripper == 1.0 and [x.kind for x in r.records] == [kinds.GRIPPER]
    r = admit(gate, move(HOME, gripper=-1.7))
    assert r.command.command.target.gripper == -1.0 and r.records[0].amount == pytest.approx(0.7)


def test_a_reset_carries_a_held_pose_and_what_follows_holds_the_fresh_pose() -> None:
    gate, _ = started_gate()
    r = gate.admit(Proposal("reset", True, HOME, DOWN, -1.0, reset=True), view(observation(HOME, t_recv=0.05)), 0.05)
    cmd = r.command.command
    assert cmd.target.reset and cmd.source == "reset" and not cmd.engaged
    np.testing.assert_allclose(cmd.target.pos, HOME)
    r = admit(gate, move([0.3, 0.1, 0.4]), measured=[0.3, 0.1, 0.4], t=2.0)
    assert r.held and [x.kind for x in r.records] == [kinds.HOLD_RESTORE]


def test_only_the_gate_makes_gated_commands_and_their_targets_are_read_only() -> None:
    gate, _ = started_gate()
    gated = admit(gate, move(HOME)).command
    assert check_gated(gated, LO, HI) is gated
    with pytest.raises(ValueError):
        gated.command.target.pos[0] = 0.9  # read-only array
    with pytest.raises(SafetyError, match="only be made by CommandGate"):
        GatedCommand(gated.command, 1, 0.04, 0.2)
    with pytest.raises(SafetyError, match="only be made by CommandGate"):
        GatedCommand(gated.command, 1, 0.04, 0.2, seal=object())
    with pytest.raises(SafetyError, match="did not pass the command gate"):
        check_gated(gated.command, LO, HI)
    raw = RobotCommand(0, 0.0, np.zeros(7), gated.command.target, ControlMode.REAL_TIME, True)
    with pytest.raises(SafetyError, match="RobotCommand that did not pass"):
        check_gated(raw, LO, HI)
    # the robot thread's own box check catches a gate given a different box (a wiring bug)
    wide = CommandGate(SafetyConfig(workspace_max=(1.5, 0.4, 0.7), envelope_margin_m=0.0), 20.0)
    wide.admit(rest(), view(observation([1.2, 0.0, 0.3])), 0.0)
    outside = wide.admit(move([1.2, 0.0, 0.3]), view(observation([1.2, 0.0, 0.3], t_recv=0.05)), 0.05).command
    with pytest.raises(SafetyError, match="outside the workspace box"):
        check_gated(outside, LO, HI)


def test_view_not_ready_before_any_state() -> None:
    gate = CommandGate(SafetyConfig(), 20.0)
    r = gate.admit(move(HOME), RobotView(False, None, ControlMode.PREDICTIVE, 0, ""), 0.0)
    assert r.command is None and r.why_held == "robot not ready"
