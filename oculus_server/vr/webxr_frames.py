"""The WebXR page's frame messages, decoded into exactly what the Quest app reports.

The page (``oculus_server/vr/webxr_page/app.js``) sends one JSON text message per XR frame::

    {"type": "frame", "seq": 812, "time": 13520.8, "sent": 1765087112345.6,
     "r": {"p": [x, y, z], "q": [x, y, z, w], "b": [[pressed, touched, value], ...], "a": [a0, a1, a2, a3]},
     "l": {...}}

* ``seq``: the page's frame counter (from 0 per connection); ``time``: the XR frame's time
  (``DOMHighResTimeStamp``, ms); ``sent``: the page's wall clock at sending
  (``performance.timeOrigin + performance.now()``, ms since the epoch).
* ``p``/``q``: the controller's **grip space** pose relative to the **viewer** (head) reference
  space, ``frame.getPose(gripSpace, viewerSpace)``: metres, unit quaternion (x, y, z, w). WebXR
  spaces are right-handed, y up, −z forward, x right — the same axes as the app's head frame.
* ``b``/``a``: the ``xr-standard`` gamepad's buttons and axes (button 0 trigger, 1 squeeze, 3
  thumbstick press, 4/5 A/B or X/Y, 6 thumbrest; axes 2/3 thumbstick x/y).

What the Quest app (rail-berkeley ``oculus_reader``, VrApi) reports is ``head⁻¹ · tracked``, where
*tracked* is VrApi's controller pose, not the OpenXR/WebXR grip pose. The app's own source defines
their relation: ``grip = tracked · X`` with ``X`` = rotation of +60° about x and translation
(0, −0.03, 0.04) m (`TRACKED_T_GRIP`). So ``head_T_controller = head_T_grip · X⁻¹``
(`GRIP_T_TRACKED`), and the DROID calibration (which uses the controller's orientation) sees the
same frame as with the app.

Buttons follow the app's names and ranges (see `oculus_server.vr.parser`): the analog
``rightTrig``/``rightGrip`` in [0, 1] are the trigger/squeeze values; the booleans ``RTr``/``RG``
are those values ≥ `PRESS_THRESHOLD` (the rule of the scripted source); ``A``/``B``/``RJ`` are the
buttons' ``pressed``; ``RThU`` (thumb up) is True when the thumb touches none of the thumbstick,
A, B or the thumbrest; ``rightJS`` is (x, −y) because WebXR's stick y is positive *down* and the
app's positive *up*. Left: X/Y/LTr/LG/LThU/LJ, leftJS/leftTrig/leftGrip.

`decode_frame` never raises: it returns a `WebXRFrame` or a `Rejection` (reason key + detail).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from oculus_server.constants import VR_ANALOG_SLACK
from oculus_server.vr.parser import Rejection, rigid_problem
from oculus_server.vr.source import LEFT_BOOLS, RIGHT_BOOLS, ButtonValue
from robot_formats.rotations import quat_from_matrix, quat_to_matrix

MAX_MESSAGE_BYTES = 8192  # a frame message is ~400 bytes; anything bigger is refused unread
PRESS_THRESHOLD = 0.5  # trigger / squeeze value at which RTr / RG (LTr / LG) count as pressed
QUAT_NORM_TOL = 1e-3  # |q| must be 1 within this


def _tracked_t_grip() -> np.ndarray:
    angle = math.radians(60.0)
    c, s = math.cos(angle), math.sin(angle)
    m = np.eye(4)
    m[:3, :3] = [[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]]
    m[:3, 3] = [0.0, -0.03, 0.04]
    return m


TRACKED_T_GRIP = _tracked_t_grip()  # (4, 4) the app's tracked → grip transform (grip = tracked · X)
GRIP_T_TRACKED = np.linalg.inv(TRACKED_T_GRIP)  # (4, 4) X⁻¹

# xr-standard gamepad indices
BTN_TRIGGER, BTN_SQUEEZE, BTN_STICK, BTN_LOWER, BTN_UPPER, BTN_THUMBREST = 0, 1, 3, 4, 5, 6
AXIS_STICK_X, AXIS_STICK_Y = 2, 3
# side -> (lower, upper, trigger, grip, thumb-up, stick press) names, then analog names
_NAMES = {
    "r": (RIGHT_BOOLS, ("rightJS", "rightTrig", "rightGrip")),
    "l": (LEFT_BOOLS, ("leftJS", "leftTrig", "leftGrip")),
}


@dataclass(frozen=True)
class WebXRFrame:
    """One decoded frame message.

    Attributes:
        seq: the page's frame counter.
        frame_time_ms: the XR frame's time on the page's clock, ms.
        sent_ms: the page's wall clock when it sent the message, ms since the epoch.
        poses: side -> (4, 4) head_T_controller as the Quest app reports it (metres, y up).
        buttons: the app's button map for the sides present.
    """

    seq: int
    frame_time_ms: float
    sent_ms: float
    poses: Mapping[str, np.ndarray]
    buttons: Mapping[str, ButtonValue]


def quat_pos_to_matrix(q: Sequence[float], p: Sequence[float]) -> np.ndarray:
    """(4, 4) transform from a unit quaternion (x, y, z, w) and a translation (m)."""
    m = np.eye(4)
    m[:3, :3] = quat_to_matrix([float(v) for v in q])
    m[:3, 3] = [float(v) for v in p]
    return m


def matrix_to_quat_pos(m: np.ndarray) -> tuple[list[float], list[float]]:
    """Inverse of `quat_pos_to_matrix` for a rigid transform: ((x, y, z, w), (x, y, z))."""
    a = np.asarray(m, dtype=float)
    return [float(v) for v in quat_from_matrix(a[:3, :3])], [float(v) for v in a[:3, 3]]


def grip_to_app(head_t_grip: np.ndarray) -> np.ndarray:
    """head_T_grip (WebXR) → head_T_controller as the Quest app reports it."""
    return head_t_grip @ GRIP_T_TRACKED


def app_to_grip(head_t_controller: np.ndarray) -> np.ndarray:
    """head_T_controller (the app's) → head_T_grip (WebXR); the inverse of `grip_to_app`."""
    return np.asarray(head_t_controller, dtype=float) @ TRACKED_T_GRIP


def _number(value: Any, what: str) -> float | Rejection:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return Rejection("not_a_number", f"expected a number for {what}; got {type(value).__name__}")
    if not math.isfinite(value):
        return Rejection("non_finite", f"expected a finite {what}; got {value!r}")
    return float(value)


def _numbers(value: Any, n: int, what: str) -> list[float] | Rejection:
    if not isinstance(value, list) or len(value) != n:
        got = f"{len(value)} items" if isinstance(value, list) else type(value).__name__
        return Rejection("bad_field", f"expected {what} as a list of {n} numbers; got {got}")
    out = []
    for v in value:
        x = _number(v, what)
        if isinstance(x, Rejection):
            return x
        out.append(x)
    return out


def _button(buttons: list[Any], i: int, side: str) -> tuple[bool, bool, float] | Rejection:
    if i >= len(buttons) or buttons[i] is None:
        return False, False, 0.0
    item = buttons[i]
    if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], bool) and isinstance(item[1], bool)):
        return Rejection("bad_button", f"expected {side} button {i} as [pressed, touched, value]; got {item!r:.60}")
    value = _number(item[2], f"{side} button {i} value")
    if isinstance(value, Rejection):
        return value
    return item[0], item[1], value


def decode_controller(side: str, item: Any) -> tuple[np.ndarray, dict[str, ButtonValue]] | Rejection:
    """One controller's entry → (head_T_controller in the app's frame, its button map)."""
    if not isinstance(item, dict):
        return Rejection("bad_field", f"expected an object for side {side!r}; got {type(item).__name__}")
    p = _numbers(item.get("p"), 3, f"{side}.p (position, m)")
    if isinstance(p, Rejection):
        return p
    q = _numbers(item.get("q"), 4, f"{side}.q (quaternion x y z w)")
    if isinstance(q, Rejection):
        return q
    norm = math.sqrt(sum(v * v for v in q))
    if abs(norm - 1.0) > QUAT_NORM_TOL:
        return Rejection("not_rigid", f"expected a unit quaternion for {side}.q; got norm {norm:.4g}")
    pose = grip_to_app(quat_pos_to_matrix(q, p))
    problem = rigid_problem(pose.reshape(-1).tolist())
    if problem is not None:
        return Rejection(problem.reason, f"pose {side!r}: {problem.detail}")

    raw_b, raw_a = item.get("b", []), item.get("a", [])
    if not isinstance(raw_b, list) or len(raw_b) > 16:
        return Rejection("bad_field", f"expected {side}.b as a list of at most 16 buttons")
    if not isinstance(raw_a, list) or len(raw_a) > 8:
        return Rejection("bad_field", f"expected {side}.a as a list of at most 8 axes")
    got: list[tuple[bool, bool, float]] = []
    for i in (BTN_TRIGGER, BTN_SQUEEZE, BTN_STICK, BTN_LOWER, BTN_UPPER, BTN_THUMBREST):
        b = _button(raw_b, i, side)
        if isinstance(b, Rejection):
            return b
        got.append(b)
    trig, squeeze, stick, lower, upper, rest = got
    axes = [0.0, 0.0]
    for k, i in enumerate((AXIS_STICK_X, AXIS_STICK_Y)):
        if i < len(raw_a) and raw_a[i] is not None:
            v = _number(raw_a[i], f"{side} axis {i}")
            if isinstance(v, Rejection):
                return v
            axes[k] = v
    for name, v, lo in (("trigger", trig[2], 0.0), ("squeeze", squeeze[2], 0.0),
                        ("thumbstick x", axes[0], -1.0), ("thumbstick y", axes[1], -1.0)):
        if not lo - VR_ANALOG_SLACK <= v <= 1.0 + VR_ANALOG_SLACK:
            return Rejection("analog_range", f"expected {side} {name} in [{lo:g}, 1]; got {v:g}")
    bools, (js, trig_name, grip_name) = _NAMES[side]
    lower_name, upper_name, tr_name, g_name, thumb_up_name, stick_name = bools
    buttons: dict[str, ButtonValue] = {
        lower_name: lower[0],
        upper_name: upper[0],
        tr_name: trig[2] >= PRESS_THRESHOLD,
        g_name: squeeze[2] >= PRESS_THRESHOLD,
        thumb_up_name: not (stick[1] or lower[1] or upper[1] or rest[1]),
        stick_name: stick[0],
        js: (axes[0], -axes[1] + 0.0),
        trig_name: trig[2],
        grip_name: squeeze[2],
    }
    return pose, buttons


def decode_frame(message: str | bytes) -> WebXRFrame | Rejection:
    """Decodes one frame message (see the module docstring); never raises."""
    if len(message) > MAX_MESSAGE_BYTES:
        return Rejection("too_long", f"expected a message of at most {MAX_MESSAGE_BYTES} bytes; got {len(message)}")
    try:
        data = json.loads(message)
    except (ValueError, UnicodeDecodeError) as exc:
        return Rejection("not_json", f"expected a JSON object; {exc}")
    if not isinstance(data, dict) or data.get("type") != "frame":
        return Rejection("bad_type", "expected a JSON object with type 'frame'")
    seq = data.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        return Rejection("bad_field", f"expected seq as an integer >= 0; got {seq!r:.40}")
    frame_time = _number(data.get("time"), "time (ms)")
    if isinstance(frame_time, Rejection):
        return frame_time
    sent = _number(data.get("sent"), "sent (ms)")
    if isinstance(sent, Rejection):
        return sent
    poses: dict[str, np.ndarray] = {}
    buttons: dict[str, ButtonValue] = {}
    for side in ("r", "l"):
        if data.get(side) is None:
            continue
        out = decode_controller(side, data[side])
        if isinstance(out, Rejection):
            return out
        poses[side], side_buttons = out
        buttons.update(side_buttons)
    if not poses:
        return Rejection("empty", "expected at least one controller ('r' or 'l'); got none")
    return WebXRFrame(seq=seq, frame_time_ms=frame_time, sent_ms=sent, poses=poses, buttons=buttons)


__all__ = [
    "GRIP_T_TRACKED", "MAX_MESSAGE_BYTES", "PRESS_THRESHOLD", "TRACKED_T_GRIP", "WebXRFrame", "app_to_grip",
    "decode_controller", "decode_frame", "grip_to_app", "matrix_to_quat_pos", "quat_pos_to_matrix",
]
