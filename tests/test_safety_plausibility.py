"""StateCheck: which measured states are believed, when a fault starts, and how it ends."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation as R

from oculus_server.safety.config import SafetyConfig
from oculus_server.safety.plausibility import StateCheck
from tests.control_fakes import DOWN, HOME, observation


def check(**cfg) -> StateCheck:
    return StateCheck(SafetyConfig(**cfg), control_hz=20.0)


def test_sound_states_and_ordinary_motion_are_believed() -> None:
    c = check()
    for k in range(20):  # 0.5 m/s along x, a state every 0.15 s
        v = c.judge(observation(HOME + [0.075 * k * 0.1, 0, 0], t_recv=0.15 * k))
        assert v.believed and not v.fault_started
    assert not c.faulty and c.believed is not None and c.rejected == 0


@pytest.mark.parametrize(
    "pos, quat, fragment",
    [
        ([3.0, -2.5, 2.0], DOWN, "outside the workspace box"),
        ([0.45, 0.0, -0.4], DOWN, "outside the workspace box"),
        (HOME, [1.2, 0.0, 0.0, 0.0], "quaternion norm 1.2"),
        (HOME, [0.0, 0.0, 0.0, 0.0], "quaternion norm 0"),
        ([np.nan, 0.0, 0.3], DOWN, "non-finite pose"),
        (HOME, [np.inf, 0.0, 0.0, 1.0], "non-finite pose"),
    ],
)
def test_unsound_states_are_not_believed_and_start_a_fault(pos, quat, fragment) -> None:
    c = check()
    v = c.judge(observation(pos, quat))
    assert not v.believed and v.fault_started and fragment in v.reason
    assert c.faulty and c.fault_reason == v.reason and c.believed is None
    v2 = c.judge(observation(pos, quat, t_recv=0.1))
    assert not v2.believed and not v2.fault_started  # the fault goes on, reported once
    # the first sound state is believed (nothing believed before it to compare with)
    v3 = c.judge(observation(HOME, t_recv=0.2))
    assert v3.believed and v3.fault_ended and not c.faulty


def test_the_envelope_margin_is_configurable() -> None:
    just_out = [0.75 + 0.25, 0.0, 0.3]
    assert check().judge(observation(just_out)).believed  # 0.25 m < 0.3 m margin
    assert not check(envelope_margin_m=0.1).judge(observation(just_out)).believed


def test_a_jump_no_arm_can_make_is_a_fault_that_waiting_does_not_cure() -> None:
    c = check()
    c.judge(observation(HOME, t_recv=0.0))
    far = HOME + [0.25, 0.35, 0.3]  # 0.526 m away, inside the box
    v = c.judge(observation(far, t_recv=0.15))
    assert not v.believed and v.fault_started and "jumped 0.5" in v.reason and "1.7 m/s" in v.reason
    for k in range(40):  # it stays there for 6 s: still not believed
        assert not c.judge(observation(far, t_recv=0.3 + 0.15 * k)).believed
    assert c.faulty and c.believed is not None
    np.testing.assert_allclose(c.believed.state.pos, HOME)
    # back near the last believed pose: the fault ends
    v = c.judge(observation(HOME + [0.01, 0, 0], t_recv=7.0))
    assert v.believed and v.fault_ended and not c.faulty


def test_a_fault_also_ends_near_the_last_sent_target() -> None:
    c = check()
    c.judge(observation(HOME, t_recv=0.0))
    assert not c.judge(observation(HOME + [0.6, 0, 0], t_recv=0.1)).believed
    last_sent = (tuple(HOME + [0.0, 0.1, 0.0]), tuple(DOWN))
    assert not c.judge(observation(HOME + [0.0, 0.05, 0.0], t_recv=0.2), last_sent).believed  # 5 cm off both
    v = c.judge(observation(HOME + [0.0, 0.095, 0.0], t_recv=0.3), last_sent)
    assert v.believed and v.fault_ended


def test_an_orientation_jump_is_a_fault() -> None:
    c = check()
    c.judge(observation(HOME, DOWN, t_recv=0.0))
    turned = (R.from_rotvec([0, 0, 1.5]) * R.from_quat(DOWN)).as_quat()
    v = c.judge(observation(HOME, turned, t_recv=0.1))  # 1.5 rad in 0.1 s (> 2.5 rad/s × 0.15 s)
    assert not v.believed and "orientation jumped 1.5" in v.reason


def test_a_new_link_epoch_starts_afresh_wherever_the_arm_is() -> None:
    c = check()
    c.judge(observation(HOME, t_recv=0.0, epoch=1))
    far = HOME + [0.2, 0.3, 0.2]
    v = c.judge(observation(far, t_recv=0.1, epoch=2))  # e.g. a restarted simulator
    assert v.believed and not c.faulty
    np.testing.assert_allclose(c.believed.state.pos, far)
    # a fault in epoch 2 ends with epoch 3
    assert not c.judge(observation(HOME, t_recv=0.2, epoch=2)).believed
    assert c.judge(observation(HOME, t_recv=0.3, epoch=3)).believed


def test_a_long_silence_does_not_make_any_jump_believable() -> None:
    c = check(max_state_speed_m_s=0.5)
    c.judge(observation(HOME, t_recv=0.0))
    # 10 s without states, same link: the bound uses at most max_state_gap_s (0.5 s) + a period
    v = c.judge(observation(HOME + [0.0, 0.0, 0.3], t_recv=10.0))
    assert not v.believed and "within 0.550 s" in v.reason and "at most 0.275 m" in v.reason
