"""Names of safety interventions (`SafetyRecord.kind`, counter names ``safety_<kind>``).

A command-level kind says what the gate changed in a command that left; a state-level kind says
why measured state was (or again is) believed or not.
"""

from __future__ import annotations

# -- the gate changed a command ------------------------------------------------------------------
BOX = "box"  # position clamped into the workspace box
STEP_POS = "step_pos"  # position step from the previous sent target limited
STEP_ROT = "step_rot"  # rotation step from the previous sent target limited
GRIPPER = "gripper"  # gripper value not finite or outside [-1, 1]: last one kept / clipped
QUAT = "quat"  # target quaternion renormalised (it was not unit length)
# -- the gate refused a proposal (the arm holds the measured pose instead) ----------------------
REFUSED_NONFINITE = "refused_nonfinite"  # NaN/inf in the proposed pose
REFUSED_QUAT = "refused_quat"  # zero-length quaternion
HOLD_RESTORE = "hold_restore"  # first command after an outage or fault: holds the fresh pose
OUTSIDE_BOX = "outside_box"  # nothing sent: the arm stands outside the box by more than a step
# -- measured state ------------------------------------------------------------------------------
IMPLAUSIBLE_STATE = "implausible_state"  # not believed: the link is treated as faulty
STATE_PLAUSIBLE = "state_plausible"  # believed again: the fault is over
# -- the robot thread ----------------------------------------------------------------------------
EXPIRED = "expired"  # a command older than the age limit was not sent
STALE_LINK = "stale_link"  # a command made before the link was re-established was not sent

COMMAND_KINDS = (BOX, STEP_POS, STEP_ROT, GRIPPER, QUAT, REFUSED_NONFINITE, REFUSED_QUAT, HOLD_RESTORE, OUTSIDE_BOX)
STATE_KINDS = (IMPLAUSIBLE_STATE, STATE_PLAUSIBLE)
ROBOT_THREAD_KINDS = (EXPIRED, STALE_LINK)
ALL_KINDS = COMMAND_KINDS + STATE_KINDS + ROBOT_THREAD_KINDS


def counter_name(kind: str) -> str:
    """The `SharedState` counter of `kind`."""
    return f"safety_{kind}"
