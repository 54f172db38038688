"""Drive the arm from a terminal: keys move a virtual right controller in the app frame.

The source reads its input descriptor (stdin by default) without blocking (``select`` with a
zero timeout), in cbreak mode when it is a terminal (restored by `close`), and prints nothing:
`KEYBOARD_HELP` is the text a dashboard shows. Every `poll` returns a fresh sample.

With ``left=True`` the keys drive the left controller instead (same motion from the left rest
pose, X/Y/LG/LTr/LJ instead of A/B/RG/RTr/RJ).

The controller starts at the scripted rest pose (`oculus_server.vr.trajectories`), whose
orientation makes DROID's default reorder map the app's forward/left/up onto the robot's
forward/left/up: so "w" moves the robot forward as long as the controller is not rotated before
the grip (deadman) is switched on. Translations are along the app's axes (head frame: x right,
y up, z backward), rotations about the app's axes, applied on the left.
"""

from __future__ import annotations

import os
import select
import sys
import threading
import time
from collections.abc import Callable

import numpy as np

from oculus_server.constants import KEYBOARD_STEP_M, KEYBOARD_STEP_RAD, VR_BUTTON_PRESS_S
from oculus_server.vr.source import SourceState, SourceStatus, VRSample, VRSource
from oculus_server.vr.trajectories import (
    REST_LEFT_POS,
    REST_RIGHT_POS,
    REST_ROT,
    drive_left,
    left_buttons,
    make_pose,
    right_buttons,
)
from robot_formats.rotations import rot_x, rot_y, rot_z

# key -> app-frame translation direction (unit vector).
MOVE_KEYS = {
    "w": (0.0, 0.0, -1.0),  # forward
    "s": (0.0, 0.0, 1.0),  # back
    "a": (-1.0, 0.0, 0.0),  # left
    "d": (1.0, 0.0, 0.0),  # right
    "r": (0.0, 1.0, 0.0),  # up
    "f": (0.0, -1.0, 0.0),  # down
}
# key -> (axis, sign) of a rotation about the app's axes.
TURN_KEYS = {
    "i": ("x", 1.0),  # pitch up
    "k": ("x", -1.0),  # pitch down
    "j": ("y", 1.0),  # yaw left
    "l": ("y", -1.0),  # yaw right
    "u": ("z", 1.0),  # roll left
    "o": ("z", -1.0),  # roll right
}
_ARROWS = {b"A": "w", b"B": "s", b"C": "d", b"D": "a"}  # ESC [ A..D
_ROT = {"x": rot_x, "y": rot_y, "z": rot_z}

KEYBOARD_HELP = """\
keyboard VR: w/s forward/back  a/d left/right  r/f up/down  (arrows too)
             i/k pitch  j/l yaw  u/o roll
             g grip (deadman) on/off   t trigger (gripper) on/off
             space = A (episode start/stop)   b = B (success)   x = joystick press (re-centre forward)
             c = back to the rest pose"""


class KeyboardSource(VRSource):
    """A virtual right controller integrated from key presses.

    Args:
        fd: input descriptor (default: stdin); a pipe works too (no cbreak mode then).
        step_m: translation per key press, metres.
        step_rad: rotation per key press, radians.
        press_s: how long momentary buttons (A, B, joystick) stay pressed, seconds.
        left: the keys drive the left controller (X/Y/LG/LTr/LJ) instead of the right.
        clock: monotonic clock, seconds.
    """

    name = "keyboard"
    help_text = KEYBOARD_HELP

    def __init__(
        self,
        fd: int | None = None,
        *,
        step_m: float = KEYBOARD_STEP_M,
        step_rad: float = KEYBOARD_STEP_RAD,
        press_s: float = VR_BUTTON_PRESS_S,
        left: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fd = sys.stdin.fileno() if fd is None else fd
        self.step_m = float(step_m)
        self.step_rad = float(step_rad)
        self.press_s = float(press_s)
        self.left = left
        self._clock = clock
        self._lock = threading.Lock()
        self._saved_tty: list | None = None
        self._started = False
        self._closed = False
        self._eof = False
        self._pending = b""
        self._seq = 0
        self._keys = 0
        self._ignored = 0
        self.rot = REST_ROT.copy()  # (3, 3) head_R_controller
        self.pos = REST_RIGHT_POS.copy()  # (3,) head_p_controller, m
        self.grip = False
        self.trigger = False
        self._press_until = {"A": -1.0, "B": -1.0, "RJ": -1.0}

    def start(self) -> None:
        """Switches a terminal input to cbreak mode (no line buffering, no echo)."""
        if self._started:
            return
        self._started = True
        if os.isatty(self.fd):
            import termios
            import tty

            self._saved_tty = termios.tcgetattr(self.fd)
            tty.setcbreak(self.fd, termios.TCSANOW)

    def close(self) -> None:
        """Restores the terminal settings (idempotent). The descriptor itself is not closed."""
        if self._closed:
            return
        self._closed = True
        if self._saved_tty is not None:
            import termios

            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved_tty)
            self._saved_tty = None

    def poll(self) -> VRSample | None:
        """Applies the keys typed since the last call; returns the controller's sample (None after EOF)."""
        if not self._started:
            self.start()
        data = self._read()
        now = self._clock()
        with self._lock:
            self._apply(data, now)
            if self._eof:
                return None
            buttons = right_buttons(
                grip=self.grip,
                trigger=1.0 if self.trigger else 0.0,
                a=now < self._press_until["A"],
                b=now < self._press_until["B"],
                rj=now < self._press_until["RJ"],
            )
            pose = make_pose(self.rot, self.pos)
            if self.left:
                poses, buttons = drive_left(pose, buttons)
            else:
                buttons.update(left_buttons())
                poses = {"r": pose, "l": make_pose(REST_ROT, REST_LEFT_POS)}
            sample = VRSample(poses=poses, buttons=buttons, t_recv=now, seq=self._seq)
            self._seq += 1
            return sample

    def status(self) -> SourceStatus:
        """CONNECTED while the input is open, FINISHED after EOF."""
        with self._lock:
            state = SourceState.FINISHED if self._eof else SourceState.CONNECTED
            detail = (
                f"grip {'ON' if self.grip else 'off'}, trigger {'ON' if self.trigger else 'off'}, {self._keys} keys"
            )
            if self._eof:
                detail = "input closed; " + detail
            return SourceStatus(state=state, samples=self._seq, rejected=self._ignored, detail=detail)

    def _read(self) -> bytes:
        if self._eof or self._closed:
            return b""
        chunks = []
        while True:
            try:
                ready, _, _ = select.select([self.fd], [], [], 0.0)
            except (OSError, ValueError):
                self._eof = True
                break
            if not ready:
                break
            try:
                data = os.read(self.fd, 4096)
            except BlockingIOError:
                break
            except OSError:
                data = b""
            if not data:
                self._eof = True
                break
            chunks.append(data)
        return b"".join(chunks)

    def _apply(self, data: bytes, now: float) -> None:
        buf = self._pending + data
        self._pending = b""
        i = 0
        while i < len(buf):
            byte = buf[i : i + 1]
            if byte == b"\x1b":  # escape sequence: arrows map to w/a/s/d, others are skipped
                if i + 1 < len(buf) and buf[i + 1 : i + 2] != b"[":  # a lone ESC key
                    self._ignored += 1
                    i += 1
                    continue
                if i + 2 >= len(buf):
                    self._pending = buf[i:] if not self._eof else b""
                    break
                key = _ARROWS.get(buf[i + 2 : i + 3]) if buf[i + 1 : i + 2] == b"[" else None
                i += 3
                if key is None:
                    self._ignored += 1
                else:
                    self._key(key, now)
                continue
            self._key(byte.decode("latin-1"), now)
            i += 1
        if self._eof:  # input gone: release the deadman
            self.grip = False

    def _key(self, key: str, now: float) -> None:
        self._keys += 1
        if key in MOVE_KEYS:
            self.pos = self.pos + self.step_m * np.array(MOVE_KEYS[key])
        elif key in TURN_KEYS:
            axis, sign = TURN_KEYS[key]
            self.rot = _ROT[axis](sign * self.step_rad) @ self.rot
        elif key == "g":
            self.grip = not self.grip
        elif key == "t":
            self.trigger = not self.trigger
        elif key == " ":
            self._press_until["A"] = now + self.press_s
        elif key == "b":
            self._press_until["B"] = now + self.press_s
        elif key == "x":
            self._press_until["RJ"] = now + self.press_s
        elif key == "c":
            self.rot, self.pos = REST_ROT.copy(), REST_RIGHT_POS.copy()
        else:
            self._keys -= 1
            self._ignored += 1
