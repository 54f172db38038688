"""Reads the VR topics of a recording back as replay frames, for `replay:FILE` sources.

The writer records each VR sample as `/vr/right/pose` and `/vr/left/pose` (`foxglove.PoseInFrame`,
head-relative, exactly as the app reported them) plus `/vr/buttons` (JSON), all three carrying the
sample's `seq` as MCAP sequence and its receive time as log time. This module joins them back by
sequence into ``(t_seconds, poses, buttons)`` with oculus_reader button names.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from robot_formats.recording import schemas as S
from robot_formats.recording.reader import RecordingReader
from robot_formats.recording.records import LEFT_BOOLS, RIGHT_BOOLS

_SIDES = {"right": ("r", RIGHT_BOOLS, "rightTrig", "rightGrip", "rightJS"),
          "left": ("l", LEFT_BOOLS, "leftTrig", "leftGrip", "leftJS")}


def _matrix(msg: Any) -> np.ndarray:
    """(4, 4) transform from a PoseInFrame message (position m, orientation xyzw)."""
    p, q = msg.pose.position, msg.pose.orientation
    x, y, z, w = q.x, q.y, q.z, q.w
    m = np.eye(4)
    m[:3, :3] = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ]
    m[:3, 3] = [p.x, p.y, p.z]
    return m


def _buttons(body: dict) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for side, (_, bools, trig, grip, js) in _SIDES.items():
        b = body.get(side)
        if not isinstance(b, dict):
            continue
        for name in bools:
            out[name] = bool(b.get(name, False))
        if b.get("trigger") is not None:
            out[trig] = float(b["trigger"])
        if b.get("grip") is not None:
            out[grip] = float(b["grip"])
        if b.get("joystick_x") is not None and b.get("joystick_y") is not None:
            out[js] = (float(b["joystick_x"]), float(b["joystick_y"]))
    return out


def load_vr_frames(path: str | Path) -> Iterator[tuple[float, dict[str, np.ndarray], dict[str, Any]]]:
    """Yields the recording's VR samples as (t seconds since the first, poses, buttons), in order."""
    topics = [S.TOPIC_VR_POSE["r"], S.TOPIC_VR_POSE["l"], S.TOPIC_VR_BUTTONS]
    with RecordingReader(path) as reader:
        current: int | None = None
        t0: int | None = None
        log_ns = 0
        poses: dict[str, np.ndarray] = {}
        buttons: dict[str, Any] = {}
        for topic, ns, _pub, seq, msg in reader.messages(topics):
            if seq != current:
                if t0 is not None and (poses or buttons):
                    yield (log_ns - t0) / 1e9, poses, buttons
                current, poses, buttons, log_ns = seq, {}, {}, ns
                t0 = ns if t0 is None else t0
            if topic == S.TOPIC_VR_BUTTONS:
                buttons = _buttons(msg)
            else:
                poses["r" if topic == S.TOPIC_VR_POSE["r"] else "l"] = _matrix(msg)
        if t0 is not None and (poses or buttons):
            yield (log_ns - t0) / 1e9, poses, buttons
