"""Writer of the Quest app's log lines: the inverse of `oculus_server.vr.parser`.

Produces byte-exact lines in the format the rail-berkeley app logs (see the parser's docstring),
optionally with the ``adb logcat`` threadtime prefix (``MM-DD HH:MM:SS.mmm  PID  TID I Unity   : ``).
Used by the fake headset and by the parser's round-trip tests.

Number formats, as the app's C++ writes them (rail-berkeley/oculus_reader ``app_source/Src``):

* matrices: ``OVR::Matrix4f::ToString``, i.e. ``"%g "`` per element, row-major;
* analog buttons: ``std::to_string(float)``, i.e. the float widened to double and printed with
  ``"%f"`` (six decimals: ``0.000000``, ``-0.250000``, ``1.000000``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

import numpy as np

from oculus_server.constants import QUEST_LOG_TAG
from oculus_server.vr.source import LEFT_BOOLS, RIGHT_BOOLS, ButtonValue
from robot_formats.recording.records import analog_value

_SIDE_BUTTONS = (
    ("R", RIGHT_BOOLS, "rightJS", "rightTrig", "rightGrip"),
    ("L", LEFT_BOOLS, "leftJS", "leftTrig", "leftGrip"),
)


def format_matrix(matrix: np.ndarray) -> str:
    """Formats a (4, 4) transform as 16 row-major ``%g`` numbers, each followed by a space."""
    return "".join(f"{v:g} " for v in np.asarray(matrix, dtype=float).reshape(16))


def to_string_float(value: float) -> str:
    """``std::to_string`` of a C++ float: rounded to float32, printed with ``%f``."""
    return f"{float(np.float32(value)):f}"


def format_buttons(buttons: Mapping[str, ButtonValue]) -> str:
    """Formats a button map as the app does: ``R,<pressed>,rightJS x y,rightTrig v,rightGrip v,L,...``.

    A side is written when any of its keys is in `buttons`; missing analog values are written as 0.
    Analog values are written as ``std::to_string`` does (``rightTrig 0.500000``).
    """
    parts: list[str] = []
    for marker, bools, js, trig, grip in _SIDE_BUTTONS:
        if not any(k in buttons for k in (*bools, js, trig, grip)):
            continue
        parts.append(marker)
        parts.extend(b for b in bools if buttons.get(b, False))
        jx, jy = buttons.get(js, (0.0, 0.0))  # type: ignore[misc]
        parts.append(f"{js} {to_string_float(jx)} {to_string_float(jy)}")
        parts.append(f"{trig} {to_string_float(analog_value(buttons.get(trig, 0.0)))}")
        parts.append(f"{grip} {to_string_float(analog_value(buttons.get(grip, 0.0)))}")
    return ",".join(parts)


def format_payload(
    poses: Mapping[str, np.ndarray], buttons: Mapping[str, ButtonValue], order: Iterable[str] = ("r", "l")
) -> str:
    """Formats the text the app writes after ``"wE9ryARX: "`` (no newline).

    Args:
        poses: side -> (4, 4) head_T_controller; sides not in `poses` are left out.
        buttons: button map (plain floats or 1-tuples for analog values).
        order: the order the sides are written in.
    """
    items = [f"{side}:{format_matrix(poses[side])}" for side in order if side in poses]
    return "|".join(items) + "&" + format_buttons(buttons)


def logcat_prefix(wall_time: float, pid: int, tid: int, level: str = "I", tag: str = "Unity") -> str:
    """Returns the ``adb logcat -v threadtime`` prefix for a message logged at `wall_time` (s)."""
    stamp = time.strftime("%m-%d %H:%M:%S", time.localtime(wall_time))
    millis = int((wall_time % 1.0) * 1000.0)
    return f"{stamp}.{millis:03d} {pid:5d} {tid:5d} {level} {tag:<8}: "


def format_logcat_line(
    poses: Mapping[str, np.ndarray],
    buttons: Mapping[str, ButtonValue],
    wall_time: float,
    pid: int = 1234,
    tid: int = 1290,
    order: Iterable[str] = ("r", "l"),
) -> bytes:
    """Returns one complete app line as ``adb logcat`` prints it, newline included."""
    text = logcat_prefix(wall_time, pid, tid) + QUEST_LOG_TAG + ": " + format_payload(poses, buttons, order) + "\n"
    return text.encode("ascii")
