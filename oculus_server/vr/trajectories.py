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

`pick_place` picks the red cube and stacks it on the blue one, in the simulator's scene, starting
from the simulator's home pose (`PICK_PLACE_START_TCP`, where the arm is at the grip press).
`place_back` puts it back; `scripted:pick_place@loop=1` alternates the two, so the demo repeats
for ever. Times in trajectory seconds (speed 1), see `PICK_PLACE_TIMES`; the hand's targets are
`PICK_PLACE_WAYPOINTS` (robot base frame, m, relative to the grip-press pose):

====================  ===========  ================================================
phase                 time (s)     robot motion
====================  ===========  ================================================
rest, A pressed       0.3–0.5      none (A starts an episode)
grip pressed          1.0          deadman on; calibration frozen here
approach              1.2–2.7      to `HOVER_Z` above the cube to pick
down                  2.9–4.1      to the grasp height (fingertips just above the table)
close                 4.3–4.8      trigger 0 → 1 (gripper closes on the cube)
lift                  5.2–6.4      back to `HOVER_Z`, cube in hand
carry                 6.6–8.1      above the place spot
lower                 8.3–9.5      to just above the place height
open                  9.7–10.1     trigger 1 → 0 (the cube is released)
retreat               10.3–11.3    back up to `HOVER_Z`
return                11.3–12.5    back to the grip-press pose (then 1.1 s for the arm to settle)
grip released         13.6         deadman off
B pressed             13.9–14.1    marks the episode a success
A pressed             14.4–14.6    stops the episode
end                   15.1         the trajectory is over
====================  ===========  ================================================

`Trajectory.sample(t, left=True)` hands the same motion to the left controller (from the left
rest pose, pressing X/Y/LG/LTr/LJ), for a policy configured for the left hand.

Motions follow minimum-jerk profiles (zero velocity and acceleration at both ends).

The arm lags the controller (a ~150 ms robot round trip, the step limits, a loaded machine), so
a pick-and-place played on the clock alone can close the fingers before the hand is down at the
cube. Like an operator who watches the arm, `pick_place` and `place_back` have **gates** at the
end of each move phase (`Trajectory.gates`): when the source can see the measured hand
(`ScriptedSource.watch_robot`), it holds the controller still at a gate until the hand is within
the gate's tolerance of where the motion leads (the displacement from the hand's pose at the grip
press). It waits as long as the arm keeps coming closer (by `GATE_PROGRESS_M` within every
`GATE_TIMEOUT_S`; `GATE_MAX_WAIT_S` at most), so a slow arm on a busy machine is waited for and a
stuck one is not; then the trajectory goes on. Without the arm's state the trajectory plays on the
clock, as in the table.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from oculus_server.errors import ConfigError
from oculus_server.vr.source import LEFT_BOOLS, RIGHT_BOOLS, ButtonValue
from robot_formats.rotations import rot_y

GRIP_PRESS_T = 1.0  # s: first grip press of every trajectory (controller still for 1 s before)


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
    "grip": (GRIP_PRESS_T, 13.6),
    "approach": (1.2, 2.7),
    "down": (2.9, 4.1),
    "close": (4.3, 4.8),
    "lift": (5.2, 6.4),
    "carry": (6.6, 8.1),
    "lower": (8.3, 9.5),
    "open": (9.7, 10.1),
    "retreat": (10.3, 11.3),
    "return": (11.3, 12.5),
    "b_success": (13.9, 14.1),
    "a_stop": (14.4, 14.6),
    "end": (15.1, 15.1),
}
MOVE_PHASES = ("approach", "down", "lift", "carry", "lower", "retreat", "return")

# The simulator's scene, as the demo expects it (robot base frame, m); tests check these against
# `frankateach.sim.model` (not imported here: it needs MuJoCo).
PICK_PLACE_START_TCP = (0.4577, 0.0320, 0.2656)  # home TCP: where the arm is at the grip press
RED_CUBE_XY = (0.50, 0.00)
BLUE_CUBE_XY = (0.45, 0.15)
CUBE_SIZE_M = 0.045
HOVER_Z = 0.20  # TCP height for moving between cubes (the cube in hand clears the other)
GRASP_Z = 0.06  # TCP height that closes the simulated fingers around a cube on the table
RELEASE_CLEARANCE_M = 0.01  # a placed cube is let go this far above its resting height
GATE_TOL_M = 0.006  # the hand must be this close to the grasp / release pose before the fingers move
GATE_TOL_TRAVEL_M = 0.015  # ... and to the other waypoints before the next move starts
GATE_TIMEOUT_S = 6.0  # wall seconds a gate waits for an arm that comes no closer (then the trajectory goes on)
GATE_PROGRESS_M = 0.002  # ... closer by this much counts as coming closer (a slow arm on a busy machine)
GATE_MAX_WAIT_S = 60.0  # wall seconds a gate waits at most, however the arm moves


@dataclass(frozen=True)
class Gate:
    """A point where a scripted operator waits for the arm.

    Attributes:
        t: trajectory time (s, within one run) at which the controller holds still.
        displacement: (3,) where the hand should be then, relative to its pose at the grip press
            (robot base frame, m).
        tol_m: how close (m) the measured hand must be.
        name: the phase that ends here (for logs).
    """

    t: float
    displacement: np.ndarray
    tol_m: float
    name: str


@dataclass(frozen=True)
class PickPlacePlan:
    """Where one pick-and-place picks and places (TCP targets, robot base frame, m)."""

    pick_xy: tuple[float, float]
    pick_z: float
    place_xy: tuple[float, float]
    place_z: float

    def waypoints(self) -> dict[str, np.ndarray]:
        """Phase -> (3,) target at the end of that move phase, relative to the start pose."""
        start = np.array(PICK_PLACE_START_TCP)
        px, py = self.pick_xy
        qx, qy = self.place_xy
        absolute = {
            "approach": (px, py, HOVER_Z),
            "down": (px, py, self.pick_z),
            "lift": (px, py, HOVER_Z),
            "carry": (qx, qy, HOVER_Z),
            "lower": (qx, qy, self.place_z),
            "retreat": (qx, qy, HOVER_Z),
        }
        out = {k: np.array(v) - start for k, v in absolute.items()}
        out["return"] = np.zeros(3)
        return out


# Red from the table onto the blue cube, and back.
PICK_RED_ONTO_BLUE = PickPlacePlan(RED_CUBE_XY, GRASP_Z, BLUE_CUBE_XY, GRASP_Z + CUBE_SIZE_M + RELEASE_CLEARANCE_M)
PUT_RED_BACK = PickPlacePlan(BLUE_CUBE_XY, GRASP_Z + CUBE_SIZE_M, RED_CUBE_XY, GRASP_Z + RELEASE_CLEARANCE_M)
PICK_PLACE_WAYPOINTS: Mapping[str, np.ndarray] = PICK_RED_ONTO_BLUE.waypoints()
# DROID's default reorder [-2, -1, -3, 4], position part: app (x, y, z) -> robot (−y, −x, −z).
DROID_REORDER = np.array([[0.0, -1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
# Robot Δ = M · app Δ with M = G · R0ᵀ (forward −z → +x, left −x → +y, up +y → +z).
_APP_TO_ROBOT = DROID_REORDER @ REST_ROT.T


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


def right_buttons(
    grip: bool = False, trigger: float = 0.0, a: bool = False, b: bool = False, rj: bool = False
) -> dict[str, ButtonValue]:
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
        alternate: when looping, every other run plays this trajectory instead (same duration),
            e.g. the pick-and-place and its undoing, so the scene is restored each second run.
        gates: where a source that sees the arm waits for it (sorted by time; see `Gate`).
    """

    name: str
    duration_s: float | None
    description: str
    right: RightFn
    alternate: str | None = None
    gates: tuple[Gate, ...] = ()

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


def drive_left(
    right_pose: np.ndarray, right: dict[str, ButtonValue]
) -> tuple[dict[str, np.ndarray], dict[str, ButtonValue]]:
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


def _pick_place_fn(plan: PickPlacePlan) -> RightFn:
    """The right controller of a pick-and-place: min-jerk moves between the plan's waypoints."""
    T = PICK_PLACE_TIMES
    waypoints = plan.waypoints()
    # App-frame displacement of each move phase (from the previous waypoint to its own).
    steps, previous = {}, np.zeros(3)
    for phase in MOVE_PHASES:
        steps[phase] = _APP_TO_ROBOT.T @ (waypoints[phase] - previous)
        previous = waypoints[phase]

    def right(t: float) -> tuple[np.ndarray, dict[str, ButtonValue]]:
        pos = REST_RIGHT_POS.copy()
        for phase, delta in steps.items():
            pos += delta * _ramp(t, T[phase])
        trigger = _ramp(t, T["close"]) - _ramp(t, T["open"])
        buttons = right_buttons(
            grip=_within(t, T["grip"]),
            trigger=trigger,
            a=_within(t, T["a_start"]) or _within(t, T["a_stop"]),
            b=_within(t, T["b_success"]),
        )
        return make_pose(REST_ROT, pos), buttons

    return right


def _pick_place_gates(plan: PickPlacePlan) -> tuple[Gate, ...]:
    """A gate at the end of every move phase; tight before the fingers close or open."""
    waypoints = plan.waypoints()
    tight = {"down", "lower"}
    return tuple(
        Gate(PICK_PLACE_TIMES[phase][1], waypoints[phase], GATE_TOL_M if phase in tight else GATE_TOL_TRAVEL_M, phase)
        for phase in MOVE_PHASES
    )


TRAJECTORIES: Mapping[str, Trajectory] = {
    t.name: t
    for t in (
        Trajectory("hold", None, "controllers still at rest; grip held from 1 s", _hold),
        Trajectory(
            "circle",
            None,
            f"{CIRCLE_RADIUS_M * 100:g} cm horizontal circle every {CIRCLE_PERIOD_S:g} s; grip held",
            _circle,
        ),
        Trajectory("figure8", None, "figure-8 in the vertical plane with wrist yaw; grip held", _figure8),
        Trajectory(
            "pick_place",
            PICK_PLACE_TIMES["end"][0],
            "pick the red cube, stack it on the blue one, come back; B (success), A",
            _pick_place_fn(PICK_RED_ONTO_BLUE),
            alternate="place_back",
            gates=_pick_place_gates(PICK_RED_ONTO_BLUE),
        ),
        Trajectory(
            "place_back",
            PICK_PLACE_TIMES["end"][0],
            "take the red cube off the blue one, put it back where it was; B, A",
            _pick_place_fn(PUT_RED_BACK),
            alternate="pick_place",
            gates=_pick_place_gates(PUT_RED_BACK),
        ),
    )
}


def get_trajectory(name: str) -> Trajectory:
    """Returns the named trajectory; raises `ConfigError` listing the known names otherwise."""
    try:
        return TRAJECTORIES[name]
    except KeyError:
        raise ConfigError(f"unknown VR trajectory {name!r}; expected one of {', '.join(TRAJECTORIES)}") from None
