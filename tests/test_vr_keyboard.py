"""KeyboardSource fed through a pipe (and a pseudo-terminal for the cbreak mode)."""

from __future__ import annotations

import os
import termios
import time

import numpy as np
import pytest

from oculus_server.vr.keyboard import KEYBOARD_HELP, KeyboardSource
from oculus_server.vr.source import SourceState
from oculus_server.vr.trajectories import REST_RIGHT_POS, REST_ROT
from robot_formats.rotations import rot_x, rot_y


class ManualClock:
    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def keys():
    rfd, wfd = os.pipe()
    clock = ManualClock()
    src = KeyboardSource(rfd, step_m=0.01, step_rad=0.1, press_s=0.2, clock=clock)
    src.start()
    yield src, wfd, clock
    src.close()
    os.close(rfd)
    try:
        os.close(wfd)
    except OSError:
        pass


def test_translation_keys_integrate_in_the_app_frame(keys) -> None:
    src, wfd, _ = keys
    s = src.poll()
    np.testing.assert_allclose(s.poses["r"][:3, 3], REST_RIGHT_POS)
    os.write(wfd, b"www" + b"a" + b"rr" + b"ff" + b"f")
    s = src.poll()
    np.testing.assert_allclose(s.poses["r"][:3, 3], REST_RIGHT_POS + [-0.01, -0.01, -0.03], atol=1e-12)
    os.write(wfd, b"s" + b"d")
    np.testing.assert_allclose(src.poll().poses["r"][:3, 3], REST_RIGHT_POS + [0.0, -0.01, -0.02], atol=1e-12)
    assert src.poll().seq == 3  # a fresh sample every poll, even without keys


def test_arrows_including_a_split_escape_sequence(keys) -> None:
    src, wfd, _ = keys
    os.write(wfd, b"\x1b[A\x1b")  # up arrow, then the start of another
    s = src.poll()
    np.testing.assert_allclose(s.poses["r"][:3, 3], REST_RIGHT_POS + [0, 0, -0.01], atol=1e-12)
    os.write(wfd, b"[C")  # ... completed: right arrow
    np.testing.assert_allclose(src.poll().poses["r"][:3, 3], REST_RIGHT_POS + [0.01, 0, -0.01], atol=1e-12)
    os.write(wfd, b"\x1b[Z\x1bq")  # an unknown sequence, a lone ESC, an unbound key: ignored
    before = src.status().rejected
    np.testing.assert_allclose(src.poll().poses["r"][:3, 3], REST_RIGHT_POS + [0.01, 0, -0.01], atol=1e-12)
    assert src.status().rejected == before + 3


def test_rotation_keys_turn_about_app_axes(keys) -> None:
    src, wfd, _ = keys
    os.write(wfd, b"jjik")
    rot = src.poll().poses["r"][:3, :3]
    np.testing.assert_allclose(rot, rot_x(-0.1) @ rot_x(0.1) @ rot_y(0.2) @ REST_ROT, atol=1e-12)
    os.write(wfd, b"uuuooo")  # roll there and back
    np.testing.assert_allclose(src.poll().poses["r"][:3, :3], rot, atol=1e-12)
    os.write(wfd, b"wc")  # back to rest
    s = src.poll()
    np.testing.assert_allclose(s.poses["r"][:3, :3], REST_ROT)
    np.testing.assert_allclose(s.poses["r"][:3, 3], REST_RIGHT_POS)


def test_grip_and_trigger_toggle_momentary_a_b(keys) -> None:
    src, wfd, clock = keys
    b = src.poll().buttons
    assert (b["RG"], b["rightGrip"], b["RTr"], b["rightTrig"], b["A"], b["B"]) == (False, 0.0, False, 0.0, False, False)
    os.write(wfd, b"gt b")
    b = src.poll().buttons
    assert (b["RG"], b["rightGrip"], b["RTr"], b["rightTrig"], b["A"], b["B"]) == (True, 1.0, True, 1.0, True, True)
    clock.t += 0.1
    assert src.poll().buttons["A"] is True  # still held
    clock.t += 0.15
    b = src.poll().buttons
    assert (b["A"], b["B"], b["RG"], b["RTr"]) == (False, False, True, True)  # momentary ones released
    os.write(wfd, b"x")
    assert src.poll().buttons["RJ"] is True
    os.write(wfd, b"gt")
    b = src.poll().buttons
    assert (b["RG"], b["RTr"]) == (False, False)
    assert "grip" in KEYBOARD_HELP and "deadman" in KEYBOARD_HELP and src.help_text == KEYBOARD_HELP


def test_keys_drive_the_robot_forward_through_droids_mapping(keys) -> None:
    src, wfd, _ = keys
    os.write(wfd, b"g")
    calib = src.poll().poses["r"]
    os.write(wfd, b"w" * 10 + b"r" * 5 + b"a" * 3)
    pose = src.poll().poses["r"]
    g = np.array([[0, -1, 0], [-1, 0, 0], [0, 0, -1]], dtype=float)  # DROID rmat_reorder [-2, -1, -3]
    delta = g @ (np.linalg.inv(calib) @ pose)[:3, 3]
    np.testing.assert_allclose(delta, [0.10, 0.03, 0.05], atol=1e-12)  # forward, left, up


def test_end_of_input_releases_the_deadman_and_finishes(keys) -> None:
    src, wfd, _ = keys
    os.write(wfd, b"g")
    assert src.poll().buttons["RG"] is True
    os.close(wfd)
    assert src.poll() is None
    st = src.status()
    assert st.state is SourceState.FINISHED and "input closed" in st.detail
    assert src.grip is False


def test_terminal_is_put_in_cbreak_mode_and_restored() -> None:
    master, slave = os.openpty()
    try:
        before = termios.tcgetattr(slave)
        assert before[3] & termios.ICANON and before[3] & termios.ECHO
        src = KeyboardSource(slave)
        src.start()
        during = termios.tcgetattr(slave)
        assert not during[3] & termios.ICANON and not during[3] & termios.ECHO
        os.write(master, b"w")  # typed without Enter
        s = None
        for _ in range(50):  # the pty may take a moment to deliver
            s = src.poll()
            if s is not None and s.poses["r"][2, 3] < REST_RIGHT_POS[2] - 0.005:
                break
            time.sleep(0.01)
        np.testing.assert_allclose(s.poses["r"][2, 3], REST_RIGHT_POS[2] - 0.01, atol=1e-12)
        src.close()
        assert termios.tcgetattr(slave) == before
        src.close()  # idempotent
    finally:
        os.close(master)
        os.close(slave)


def test_left_hand_keyboard_drives_the_left_controller() -> None:
    rfd, wfd = os.pipe()
    try:
        src = KeyboardSource(rfd, left=True, step_m=0.01)
        os.write(wfd, b"gww ")
        s = src.poll()
        assert (s.buttons["LG"], s.buttons["X"], s.buttons["RG"], s.buttons["A"]) == (True, True, False, False)
        np.testing.assert_allclose(s.poses["l"][:3, 3], REST_RIGHT_POS + [-0.30, 0.0, -0.02], atol=1e-12)
        np.testing.assert_allclose(s.poses["r"][:3, 3], REST_RIGHT_POS)
        src.close()
    finally:
        os.close(rfd)
        os.close(wfd)
