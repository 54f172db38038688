"""The WebXR page's frame messages → the Quest app's sample (frames, buttons, ranges, rejections)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oculus_server.vr.app_log import format_payload
from oculus_server.vr.parser import Rejection, parse_payload
from oculus_server.vr.trajectories import get_trajectory
from oculus_server.vr.webxr_frames import (
    GRIP_T_TRACKED,
    TRACKED_T_GRIP,
    WebXRFrame,
    app_to_grip,
    decode_frame,
    grip_to_app,
    matrix_to_quat_pos,
    quat_pos_to_matrix,
)

REST = [0.0, 0.0, 0.0, 1.0]


def _side(p=(0.15, -0.3, -0.3), q=REST, buttons=None, axes=None):
    b = buttons if buttons is not None else [[False, False, 0.0]] * 7
    return {"p": list(p), "q": list(q), "b": b, "a": axes if axes is not None else [0.0, 0.0, 0.0, 0.0]}


def _msg(seq=0, **sides):
    return json.dumps({"type": "frame", "seq": seq, "time": 1000.0, "sent": 1.7e12, **sides})


def test_the_app_transform_is_the_one_in_the_app_source() -> None:
    """grip = tracked · X with X = +60° about x, (0, −0.03, 0.04) m (oculus_reader's VrInputStandard)."""
    c, s = math.cos(math.radians(60)), math.sin(math.radians(60))
    np.testing.assert_allclose(TRACKED_T_GRIP[:3, :3], [[1, 0, 0], [0, c, -s], [0, s, c]], atol=1e-12)
    np.testing.assert_allclose(TRACKED_T_GRIP[:3, 3], [0, -0.03, 0.04])
    np.testing.assert_allclose(TRACKED_T_GRIP @ GRIP_T_TRACKED, np.eye(4), atol=1e-12)


def test_a_grip_pose_becomes_the_app_pose_and_back() -> None:
    traj = get_trajectory("pick_place")
    for t in (0.0, 2.0, 5.0, 9.0):
        poses, _ = traj.sample(t)
        for side, pose in poses.items():
            grip = app_to_grip(pose)
            q, p = matrix_to_quat_pos(grip)
            frame = decode_frame(_msg(**{side: _side(p, q)}))
            assert isinstance(frame, WebXRFrame), frame
            np.testing.assert_allclose(frame.poses[side], pose, atol=1e-9)
            np.testing.assert_allclose(grip_to_app(grip), pose, atol=1e-12)


def test_buttons_have_the_app_names_and_ranges() -> None:
    # xr-standard: 0 trigger, 1 squeeze, 2 -, 3 stick press, 4 A/X, 5 B/Y, 6 thumbrest
    right = [[True, True, 0.7], [True, False, 0.4], [False, False, 0.0], [True, True, 1.0],
             [True, True, 1.0], [False, False, 0.0], [False, False, 0.0]]
    left = [[False, False, 0.2], [True, True, 1.0], [False, False, 0.0], [False, False, 0.0],
            [False, False, 0.0], [True, False, 1.0], [False, False, 0.0]]
    frame = decode_frame(_msg(r=_side(buttons=right, axes=[0, 0, 0.25, -0.5]),
                              l=_side((-0.15, -0.3, -0.3), buttons=left, axes=[0, 0, -1.0, 1.0])))
    assert isinstance(frame, WebXRFrame), frame
    assert frame.buttons == {
        "A": True, "B": False, "RTr": True, "RG": False, "RThU": False, "RJ": True,
        "rightJS": (0.25, 0.5), "rightTrig": 0.7, "rightGrip": 0.4,
        "X": False, "Y": True, "LTr": False, "LG": True, "LThU": True, "LJ": False,
        "leftJS": (-1.0, -1.0), "leftTrig": 0.2, "leftGrip": 1.0,
    }
    # the same map survives the app's own text format and parser: same names, same ranges
    parsed = parse_payload(format_payload(frame.poses, frame.buttons, ("r", "l")))
    assert not isinstance(parsed, Rejection), parsed
    assert parsed.buttons == frame.buttons


@pytest.mark.parametrize(("change", "reason"), [
    (lambda m: m.update(type="nope"), "bad_type"),
    (lambda m: m.update(seq=-1), "bad_field"),
    (lambda m: m.update(seq=True), "bad_field"),
    (lambda m: m.update(sent="x"), "not_a_number"),
    (lambda m: m["r"].update(p=[0, 0]), "bad_field"),
    (lambda m: m["r"].update(p=[0, float("nan"), 0]), "non_finite"),
    (lambda m: m["r"].update(q=[0, 0, 0, 2]), "not_rigid"),
    (lambda m: m["r"].update(p=[5.0, 0, 0]), "out_of_reach"),
    (lambda m: m["r"].update(b=[[True, True, 1.7]]), "analog_range"),
    (lambda m: m["r"].update(b=[["yes", True, 1.0]]), "bad_button"),
    (lambda m: m["r"].update(a=[0, 0, 3.0, 0]), "analog_range"),
    (lambda m: m.pop("r"), "empty"),
])
def test_bad_frames_are_rejected_with_a_reason(change, reason) -> None:
    msg = json.loads(_msg(r=_side()))
    change(msg)
    out = decode_frame(json.dumps(msg))
    assert isinstance(out, Rejection) and out.reason == reason, out


def test_oversized_and_non_json_messages_are_rejected_unread() -> None:
    assert decode_frame("x" * 10000).reason == "too_long"  # type: ignore[union-attr]
    assert decode_frame("{").reason == "not_json"  # type: ignore[union-attr]
    assert decode_frame(b"\xff\xfe").reason == "not_json"  # type: ignore[union-attr]


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
                    lambda c: st.lists(c, max_size=6) | st.dictionaries(st.sampled_from(
                        ["type", "seq", "time", "sent", "r", "l", "p", "q", "b", "a"]), c, max_size=6),
                    max_leaves=30))
def test_decode_never_raises(value) -> None:
    text = json.dumps(value)
    out = decode_frame(text)
    assert isinstance(out, (WebXRFrame, Rejection))
    if isinstance(out, WebXRFrame):
        for pose in out.poses.values():
            assert np.isfinite(pose).all()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1, 1), min_size=4, max_size=4).filter(lambda v: sum(x * x for x in v) > 1e-3),
       st.lists(st.floats(-0.5, 0.5), min_size=3, max_size=3))
def test_any_unit_quaternion_gives_a_rigid_pose(q, p) -> None:
    n = math.sqrt(sum(x * x for x in q))
    q = [x / n for x in q]
    m = quat_pos_to_matrix(q, p)
    np.testing.assert_allclose(m[:3, :3] @ m[:3, :3].T, np.eye(3), atol=1e-9)
    out = decode_frame(_msg(r=_side(p, q)))
    assert isinstance(out, WebXRFrame), out
    np.testing.assert_allclose(out.poses["r"], m @ GRIP_T_TRACKED, atol=1e-9)
