"""Named, deterministic controller trajectories (poses + buttons as functions of time).

Poses are in the app's frame, as the Quest app reports them: (4, 4) head_T_controller, metres,
y-up, forward −z, x to the operator's right. Every trajectory starts with both controllers held
still at a rest pose 0.3 m below and 0.3 m in front of the head (right hand 0.15 m to the right),
and presses the right grip (the deadman) at `GRIP_PRESS_T`, so DROID's forward calibration
(``vr_to_global_mat = inv(pose)`` while armed, frozen on the first grip press) captures the rest
pose.

Rest orientation `REST_ROT` is a +90° rotation about the app's x axis. It is the orientation for
which the DROID policy's default ``rmat_reorder = [-2, -1, -3, 4]`` (G: app (x, y, z) → robot
(−y, −x, −z), applied after the calibration) maps the operator's forward / up / left onto the
robot's forward (+x) / up (+z) / left (+y): robot Δ = G · R0ᵀ · Δ_app. So these scripted motions
read the same in both frames.

`pick_place` (times in trajectory seconds, i.e. at speed 1; see `PICK_PLACE_TIMES`):

====================  ===========  ================================================
phase                 time (s)     expected robot motion (relative to grip press)
====================  ===========  ================================================
rest, A pressed       0.3–0.5      none (A starts an episode)
grip pressed          1.0          deadman on; calibration frozen here
forward               1.2–2.7      +0.15 m along robot x
down                  2.7–3.7      −0.10 m along robot z
close                 3.8–4.2      trigger 0 → 1 (gripper closes)
lift                  4.6–5.6      +0.10 m along robot z
sideways              5.6–7.1      +0.15 m along robot y (to the robot's left)
open                  7.3–7.7      trigger 1 → 0 (gripper opens)
grip released         8.1          deadman off
B pressed             8.4–8.6      marks the episode a success
A pressed             8.9–9.1      stops the episode
end                   9.6          the trajectory is over
====================  ===========  ================================================

`Trajectory.sample(t, left=True)` hands the same motion to the left controller (from the left
rest pose, pressing X/Y/LG/LTr/LJ), for a policy configured for the left hand.

Motions follow minimum-jerk profiles (zero velocity and acceleration at both ends).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from oculus_server.errors import ConfigError
from oculus_server.vr.source import LEFT_BOOLS, RIGHT_BOOLS, ButtonValue

GRIP_PRESS_T = 1.0  # s: first grip press of every trajectory (controller still for 1 s before)


def rot_x(angle: float) -> np.ndarray:
    """(3, 3) rotation about x by `angle` rad."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_y(angle: float) -> np.ndarray:
    """(3, 3) rotation about y by `angle` rad."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rot_z(angle: float) -> np.ndarray:
    """(3, 3) rotation about z by `angle` rad."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def make_pose(rot: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """(4, 4) homogeneous transform from a (3, 3) rotation and a (3,) translation."""
    pose = np.eye(4)
    pose[:3, :3] = rot
    pose[:3, 3] = pos
    return pose


# (3, 3) head_R_controller at rest: rot_x(+90°), written exactly (see the module docstring).
REST_ROT = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
REST_RIGHT_POS = np.array([0.15, -0.30, -0.30])  # m, app frame
REST_LEFT_POS = np.array([-0.15, -0.30, -0.30])  # m, app frame

# Phase name -> (start, end) in trajectory seconds; single instants have start == end.
PICK_PLACE_TIMES: Mapping[str, tuple[float, float]] = {
    "a_start": (0.3, 0.5),
    "grip": (GRIP_PRESS_T, 8.1),
    "forward": (1.2, 2.7),
    "down": (2.7, 3.7),
    "close": (3.8, 4.2),
    "lift": (4.6, 5.6),
    "sideways": (5.6, 7.1),
    "open": (7.3, 7.7),
    "b_success": (8.4, 8.6),
    "a_stop": (8.9, 9.1),
    "end": (9.6, 9.6),
}
# Expected robot-frame displacement of each moving phase (m, robot base frame), through DROID's
# default reorder and a calibration at the grip press.
PICK_PLACE_ROBOT_DELTAS: Mapping[str, tuple[float, float, float]] = {
    "forward": (0.15, 0.0, 0.0),
    "down": (0.0, 0.0, -0.10),
    "lift": (0.0, 0.0, 0.10),
    "sideways": (0.0, 0.15, 0.0),
}
# DROID's default reorder [-2, -1, -3, 4], position part: app (x, y, z) -> robot (−y, −x, −z).
DROID_REORDER = np.array([[0.0, -1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
# Robot Δ = M · app Δ with M = G · R0ᵀ (forward −z → +x, left −x → +y, up +y → +z).
_APP_TO_ROBOT = DROID_REORDER @ REST_ROT.T
_PICK_PLACE_APP_DELTAS = {k: _APP_TO_ROBOT.T @ np.array(v) for k, v in PICK_PLACE_ROBOT_DELTAS.items()}


def min_jerk(u: float) -> float:
    """Minimum-jerk profile: 0 at u ≤ 0, 1 at u ≥ 1, zero velocity/acceleration at both ends."""
    if u <= 0.0:
        return 0.0
    if u >= 1.0:
        return 1.0
    return u * u * u * (10.0 + u * (-15.0 + 6.0 * u))


def _ramp(t: float, span: tuple[float, float]) -> float:
    return min_jerk((t - span[0]) / (span[1] - span[0]))


def _within(t: float, span: tuple[float, float]) -> bool:
    return span[0] <= t < span[1]


def right_buttons(grip: bool = False, trigger: float = 0.0, a: bool = False, b: bool = False, rj: bool = False) -> dict[str, ButtonValue]:
    """A full right-side button map with the given states (analog grip = 1.0 when held)."""
    buttons: dict[str, ButtonValue] = {name: False for name in RIGHT_BOOLS}
    buttons.update(A=bool(a), B=bool(b), RG=bool(grip), RTr=bool(trigger >= 0.5), RJ=bool(rj))
    buttons.update(rightJS=(0.0, 0.0), rightTrig=float(trigger), rightGrip=1.0 if grip else 0.0)
    return buttons


def left_buttons() -> dict[str, ButtonValue]:
    """A full left-side button map with nothing pressed."""
    buttons: dict[str, ButtonValue] = {name: False for name in LEFT_BOOLS}
    buttons.update(leftJS=(0.0, 0.0), leftTrig=0.0, leftGrip=0.0)
    return buttons


RightFn = Callable[[float], tuple[np.ndarray, dict[str, ButtonValue]]]


@dataclass(frozen=True)
class Trajectory:
    """A named trajectory of the right controller (the left one rests still).

    Attributes:
        name: short name used in `scripted:NAME` specs.
        duration_s: length in trajectory seconds, or None for an endless one.
        description: one line for help texts.
        right: t (trajectory seconds) -> ((4, 4) head_T_right, right-side button map).
    """

    name: str
    duration_s: float | None
    description: str
    right: RightFn

    def sample(self, t: float, left: bool = False) -> tuple[dict[str, np.ndarray], dict[str, ButtonValue]]:
        """Returns (poses, buttons) at trajectory time `t` (s), both controllers included.

        With `left`, the left controller performs the motion (from the left rest pose, pressing
        X/Y/LG/LTr/LJ instead of A/B/RG/RTr/RJ) and the right one rests.
        """
        pose, buttons = self.right(float(t))
        if left:
            return drive_left(pose, buttons)
        buttons.update(left_buttons())
        return {"r": pose, "l": make_pose(REST_ROT, REST_LEFT_POS)}, buttons


_RIGHT_TO_LEFT = {
    **dict(zip(RIGHT_BOOLS, LEFT_BOOLS)),  # A→X, B→Y, RTr→LTr, RG→LG, RThU→LThU, RJ→LJ
    "rightJS": "leftJS",
    "rightTrig": "leftTrig",
    "rightGrip": "leftGrip",
}


def drive_left(right_pose: np.ndarray, right: dict[str, ButtonValue]) -> tuple[dict[str, np.ndarray], dict[str, ButtonValue]]:
    """Moves a right-hand motion to the left controller: same displacement from the left rest pose,
    same presses on the left buttons; the right controller rests with nothing pressed."""
    pose = right_pose.copy()
    pose[:3, 3] += REST_LEFT_POS - REST_RIGHT_POS
    buttons = right_buttons()
    buttons.update({_RIGHT_TO_LEFT[k]: v for k, v in right.items()})
    return {"r": make_pose(REST_ROT, REST_RIGHT_POS), "l": pose}, buttons


def _hold(t: float) -> tuple[np.ndarray, dict[str, ButtonValue]]:
    return make_pose(REST_ROT, REST_RIGHT_POS), right_buttons(grip=t >= GRIP_PRESS_T)


_MOTION_START = GRIP_PRESS_T + 0.2  # s: motions begin shortly after the grip press
_RAMP_S = 1.0  # s: angular speed ramps up linearly over this long


def _phase(t: float, period: float) -> float:
    """Angle (rad) that starts at 0 at `_MOTION_START`, accelerates for `_RAMP_S`, then runs at 2π/period."""
    tau = t - _MOTION_START
    omega = 2.0 * math.pi / period
    if tau <= 0.0:
        return 0.0
    if tau < _RAMP_S:
        return omega * tau * tau / (2.0 * _RAMP_S)
    return omega * (tau - _RAMP_S / 2.0)


CIRCLE_RADIUS_M = 0.08
CIRCLE_PERIOD_S = 4.0


def _circle(t: float) -> tuple[np.ndarray, dict[str, ButtonValue]]:
    phi = _phase(t, CIRCLE_PERIOD_S)
    r = CIRCLE_RADIUS_M
    pos = REST_RIGHT_POS + np.array([r * (math.cos(phi) - 1.0), 0.0, -r * math.sin(phi)])
    return make_pose(REST_ROT, pos), right_buttons(grip=t >= GRIP_PRESS_T)


FIGURE8_SIZE_M = (0.10, 0.05)  # half-width (app x), half-height (app y)
FIGURE8_PERIOD_S = 6.0
FIGURE8_YAW_RAD = 0.2  # wrist yaw oscillation amplitude about the app's y axis


def _figure8(t: float) -> tuple[np.ndarray, dict[str, ButtonValue]]:
    phi = _phase(t, FIGURE8_PERIOD_S)
    w, h = FIGURE8_SIZE_M
    pos = REST_RIGHT_POS + np.array([w * math.sin(phi), h * math.sin(2.0 * phi), 0.0])
    rot = rot_y(FIGURE8_YAW_RAD * math.sin(phi)) @ REST_ROT
    return make_pose(rot, pos), right_buttons(grip=t >= GRIP_PRESS_T)


def _pick_place(t: float) -> tuple[np.ndarray, dict[str, ButtonValue]]:
    T = PICK_PLACE_TIMES
    pos = REST_RIGHT_POS.copy()
    for phase, delta in _PICK_PLACE_APP_DELTAS.items():
        pos += delta * _ramp(t, T[phase])
    trigger = _ramp(t, T["close"]) - _ramp(t, T["open"])
    buttons = right_buttons(
        grip=_within(t, T["grip"]),
        trigger=trigger,
        a=_within(t, T["a_start"]) or _within(t, T["a_stop"]),
        b=_within(t, T["b_success"]),
    )
    return make_pose(REST_ROT, pos), buttons


TRAJECTORIES: Mapping[str, Trajectory] = {
    t.name: t
    for t in (
        Trajectory("hold", None, "controllers still at rest; grip held from 1 s", _hold),
        Trajectory("circle", None, f"{CIRCLE_RADIUS_M * 100:g} cm horizontal circle every {CIRCLE_PERIOD_S:g} s; grip held", _circle),
        Trajectory("figure8", None, "figure-8 in the vertical plane with wrist yaw; grip held", _figure8),
        Trajectory("pick_place", PICK_PLACE_TIMES["end"][0], "A, grip, forward, down, close, lift, sideways, open, release, B, A", _pick_place),
    )
}


def get_trajectory(name: str) -> Trajectory:
    """Returns the named trajectory; raises `ConfigError` listing the known names otherwise."""
    try:
        return TRAJECTORIES[name]
    except KeyError:
        raise ConfigError(f"unknown VR trajectory {name!r}; expected one of {', '.join(TRAJECTORIES)}") from None
