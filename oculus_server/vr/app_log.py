"""Writer of the Quest app's log lines: the inverse of `oculus_server.vr.parser`.

Produces byte-exact lines in the format the rail-berkeley app logs (see the parser's docstring),
optionally with the ``adb logcat`` threadtime prefix (``MM-DD HH:MM:SS.mmm  PID  TID I Unity   : ``).
Used by the fake headset and by the parser's round-trip tests.
"""

from __future__ import annotations

import time
from typing import Iterable, Mapping

import numpy as np

from frankateach.constants import QUEST_LOG_TAG
from oculus_server.vr.source import LEFT_BOOLS, RIGHT_BOOLS, ButtonValue

_SIDE_BUTTONS = (
    ("R", RIGHT_BOOLS, "rightJS", "rightTrig", "rightGrip"),
    ("L", LEFT_BOOLS, "leftJS", "leftTrig", "leftGrip"),
)


def format_matrix(matrix: np.ndarray) -> str:
    """Formats a (4, 4) transform as 16 row-major ``%g`` numbers, each followed by a space."""
    return "".join("%g " % v for v in np.asarray(matrix, dtype=float).reshape(16))


def _analog(value: ButtonValue) -> float:
    if isinstance(value, (tuple, list)):  # oculus_reader-style 1-tuple
        return float(value[0])
    return float(value)


def format_buttons(buttons: Mapping[str, ButtonValue]) -> str:
    """Formats a button map as the app does: ``R,<pressed>,rightJS x y,rightTrig v,rightGrip v,L,...``.

    A side is written when any of its keys is in `buttons`; missing analog values are written as 0.
    """
    parts: list[str] = []
    for marker, bools, js, trig, grip in _SIDE_BUTTONS:
        if not any(k in buttons for k in (*bools, js, trig, grip)):
            continue
        parts.append(marker)
        parts.extend(b for b in bools if buttons.get(b, False))
        jx, jy = buttons.get(js, (0.0, 0.0))  # type: ignore[misc]
        parts.append("%s %g %g" % (js, float(jx), float(jy)))
        parts.append("%s %g" % (trig, _analog(buttons.get(trig, 0.0))))
        parts.append("%s %g" % (grip, _analog(buttons.get(grip, 0.0))))
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
    return "%s.%03d %5d %5d %s %-8s: " % (stamp, millis, pid, tid, level, tag)


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
