"""The VR teleoperation policy (DROID's), one concept per module.

* `config`: `PolicyConfig`, validated at load.
* `droid`: DROID's arithmetic as pure functions (action, VR state, velocity → target).
* `calibration`: forward calibration ("pose" as DROID, or "motion").
* `sample`: which VR samples are usable.
* `vr_policy`: `VRPolicy`, the stateful policy (deadman, origins, link, events).
"""

from oculus_server.policy.config import CALIBRATION_MODES, GRIPPER_MODES, PolicyConfig
from oculus_server.policy.vr_policy import (
    EVENT_CALIBRATED,
    EVENT_DISENGAGED,
    EVENT_ENGAGED,
    EVENT_EPISODE_TOGGLE,
    EVENT_INVALID_SAMPLE,
    EVENT_LINK_LOST,
    EVENT_LINK_RESTORED,
    EVENT_NON_FINITE,
    EVENT_ORIGIN_RESET,
    EVENT_POSE_JUMP,
    EVENT_SUCCESS,
    HOLD_DEADMAN,
    HOLD_INVALID_SAMPLE,
    HOLD_LINK_LOST,
    HOLD_NO_SAMPLE,
    HOLD_NON_FINITE,
    HOLD_REGRIP,
    PolicyError,
    PolicyOutput,
    VRPolicy,
)

__all__ = [
    "CALIBRATION_MODES",
    "EVENT_CALIBRATED",
    "EVENT_DISENGAGED",
    "EVENT_ENGAGED",
    "EVENT_EPISODE_TOGGLE",
    "EVENT_INVALID_SAMPLE",
    "EVENT_LINK_LOST",
    "EVENT_LINK_RESTORED",
    "EVENT_NON_FINITE",
    "EVENT_ORIGIN_RESET",
    "EVENT_POSE_JUMP",
    "EVENT_SUCCESS",
    "GRIPPER_MODES",
    "HOLD_DEADMAN",
    "HOLD_INVALID_SAMPLE",
    "HOLD_LINK_LOST",
    "HOLD_NON_FINITE",
    "HOLD_NO_SAMPLE",
    "HOLD_REGRIP",
    "PolicyConfig",
    "PolicyError",
    "PolicyOutput",
    "VRPolicy",
]
