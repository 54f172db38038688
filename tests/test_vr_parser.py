"""The Quest app log-line parser, on exact byte strings and on generated lines."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oculus_server.vr.app_log import format_buttons, format_logcat_line, format_matrix, format_payload
from oculus_server.vr.parser import (
    ParsedLine,
    Rejection,
    normalize_buttons,
    parse_buttons,
    parse_buttons_tokens,
    parse_line,
    parse_payload,
)
from oculus_server.vr.source import LEFT_BOOLS, RIGHT_BOOLS

REAL_LINE = (
    b"11-23 06:20:31.123  1234  1290 I Unity   : wE9ryARX: "
    b"r:0.998 -0.0123 0.0501 0.112 0.0134 0.9995 -0.0287 -0.231 -0.0497 0.0294 0.9983 -0.342 0 0 0 1 "
    b"|l:1 0 0 -0.1 0 1 0 -0.2 0 0 1 -0.3 0 0 0 1 "
    b"&R,A,RG,rightJS 0.000000 0.000000,rightTrig 0.500000,rightGrip 1.000000,"
    b"L,leftJS 0.100000 -0.200000,leftTrig 0.000000,leftGrip 0.000000\n"
)
PREFIX = "11-23 06:20:31.123  1234  1290 I Unity   : wE9ryARX: "
R_MAT = "0.998 -0.0123 0.0501 0.112 0.0134 0.9995 -0.0287 -0.231 -0.0497 0.0294 0.9983 -0.342 0 0 0 1 "
L_MAT = "1 0 0 -0.1 0 1 0 -0.2 0 0 1 -0.3 0 0 0 1 "
# Analog values as the app writes them (std::to_string of a float: "%f").
BUTTONS = (
    "R,A,RG,rightJS 0.000000 0.000000,rightTrig 0.500000,rightGrip 1.000000,"
    "L,leftJS 0.100000 -0.200000,leftTrig 0.000000,leftGrip 0.000000"
)
R_ONLY_BUTTONS = "R,rightJS 0.250000 -1.000000,rightTrig 0.000000,rightGrip 0.750000"


def ok(line: str | bytes) -> ParsedLine:
    out = parse_line(line)
    assert isinstance(out, ParsedLine), out
    return out


def rejected(line: str | bytes) -> Rejection:
    out = parse_line(line)
    assert isinstance(out, Rejection), out
    return out


def test_real_line_parses_to_exact_values() -> None:
    p = ok(REAL_LINE)
    assert set(p.poses) == {"r", "l"} and p.dropped == ()
    np.testing.assert_array_equal(p.poses["r"][0], [0.998, -0.0123, 0.0501, 0.112])
    np.testing.assert_array_equal(p.poses["r"][:, 3], [0.112, -0.231, -0.342, 1.0])
    np.testing.assert_array_equal(p.poses["l"], [[1, 0, 0, -0.1], [0, 1, 0, -0.2], [0, 0, 1, -0.3], [0, 0, 0, 1]])
    assert p.buttons == {
        "A": True, "B": False, "RTr": False, "RG": True, "RThU": False, "RJ": False,
        "X": False, "Y": False, "LTr": False, "LG": False, "LThU": False, "LJ": False,
        "rightJS": (0.0, 0.0), "rightTrig": 0.5, "rightGrip": 1.0,
        "leftJS": (0.1, -0.2), "leftTrig": 0.0, "leftGrip": 0.0,
    }  # fmt: skip
    assert isinstance(p.buttons["rightTrig"], float)  # a plain float, not oculus_reader's 1-tuple


def test_str_and_bytes_give_the_same_result() -> None:
    a, b = ok(REAL_LINE), ok(REAL_LINE.decode())
    assert a.buttons == b.buttons
    for side in "rl":
        np.testing.assert_array_equal(a.poses[side], b.poses[side])


def test_to_sample_wraps_poses_and_buttons() -> None:
    s = ok(REAL_LINE).to_sample(t_recv=12.5, seq=7)
    assert (s.t_recv, s.seq) == (12.5, 7)
    assert s.pose("r") is not None and s.pose("x") is None


def test_side_order_does_not_matter() -> None:
    a = ok(PREFIX + f"r:{R_MAT}|l:{L_MAT}&{BUTTONS}")
    b = ok(PREFIX + f"l:{L_MAT}|r:{R_MAT}&{BUTTONS}")
    for side in "rl":
        np.testing.assert_array_equal(a.poses[side], b.poses[side])


@pytest.mark.parametrize("poses", [f"r:{R_MAT}", f"l:{L_MAT}", f"r:{R_MAT}|", f"|l:{L_MAT}"])
def test_one_side_missing(poses: str) -> None:
    p = ok(PREFIX + poses + "&" + BUTTONS)
    assert len(p.poses) == 1


def test_right_side_buttons_only_and_unpressed_defaults() -> None:
    p = ok(PREFIX + f"r:{R_MAT}&{R_ONLY_BUTTONS}")
    assert p.buttons == {
        **{b: False for b in RIGHT_BOOLS},
        "rightJS": (0.25, -1.0),
        "rightTrig": 0.0,
        "rightGrip": 0.75,
    }
    assert not any(b in p.buttons for b in LEFT_BOOLS)


def test_all_buttons_pressed() -> None:
    text = (
        "R,A,B,RTr,RG,RThU,RJ,rightJS 1 -1,rightTrig 1,rightGrip 1,"
        "L,X,Y,LTr,LG,LThU,LJ,leftJS -1 1,leftTrig 1,leftGrip 1"
    )
    p = ok(PREFIX + f"r:{R_MAT}&{text}")
    assert all(p.buttons[b] is True for b in RIGHT_BOOLS + LEFT_BOOLS)


def test_whitespace_variants_are_accepted() -> None:
    no_trailing = R_MAT.rstrip()
    double = R_MAT.replace(" ", "  ")
    for line in (
        PREFIX + f"r:{no_trailing}|l:{L_MAT}&{BUTTONS}\r\n",
        PREFIX + f"r:{double}|l:{L_MAT}&{BUTTONS}   ",
        PREFIX + f"r:{R_MAT}|l:{L_MAT}&{BUTTONS}\r\r\n",
    ):
        assert set(ok(line).poses) == {"r", "l"}


def test_unrelated_lines_are_ignored_not_rejected() -> None:
    for line in (
        b"",
        b"--------- beginning of main",
        b"11-23 06:20:31.130  1234  1301 D OVRPlugin: Tracking state: HMD 1",
        b"\x00\xff\xfe random binary",
        "11-23 06:20:31.130  1234  1301 W Unity   : Screen position out of view frustum",
    ):
        assert parse_line(line) is None


@pytest.mark.parametrize(
    "line, reason",
    [
        (PREFIX.rstrip(": ").encode() + b" no colon after tag", "no_payload"),
        (PREFIX + "", "empty"),
        (PREFIX + f"r:{R_MAT}|l:{L_MAT}", "no_separator"),  # truncated before the buttons
        (PREFIX + f"r:{R_MAT}|l:1 0 0 -0.1 0 1", "no_separator"),  # truncated mid-matrix
        (PREFIX + f"r:{R_MAT}&{BUTTONS.rsplit(',', 1)[0]}", "missing_analog"),  # truncated between buttons
        (PREFIX + f"r:{R_MAT}&{BUTTONS[: BUTTONS.rindex(' ')]}", "analog_count"),  # truncated inside a button
        (PREFIX + f"r:{R_MAT}&R,A,rightJS 0 0,rightTrig 0.5,rightGrip", "analog_count"),
        (PREFIX + f"r:{R_MAT}&", "no_buttons"),
        (PREFIX + f"r:{R_MAT}&{BUTTONS}&", "extra_separator"),
        (PREFIX + f"x:{R_MAT}&{BUTTONS}", "bad_pose_item"),
        (PREFIX + f"{R_MAT}&{BUTTONS}", "bad_pose_item"),
        (PREFIX + f"r:{R_MAT}|r:{R_MAT}&{BUTTONS}", "duplicate_side"),
        (PREFIX + f"r:{R_MAT}&R,Q,rightJS 0 0,rightTrig 0,rightGrip 0", "unknown_button"),
        (PREFIX + f"r:{R_MAT}&A,rightJS 0 0,rightTrig 0,rightGrip 0", "button_without_side"),
        (PREFIX + f"r:{R_MAT}&R,leftTrig 0,rightJS 0 0,rightTrig 0,rightGrip 0", "button_without_side"),
        (PREFIX + f"r:{R_MAT}&R,rightJS 0 0,rightTrig nan,rightGrip 0", "non_finite"),
        (PREFIX + f"r:{R_MAT}&R,rightJS 0 0,rightTrig 7,rightGrip 0", "analog_range"),
        (PREFIX + f"r:{R_MAT}&R,rightJS zero 0,rightTrig 0,rightGrip 0", "not_a_number"),
        (PREFIX + f"r:{R_MAT}&R,R,rightJS 0 0,rightTrig 0,rightGrip 0", "duplicate_button"),
        (PREFIX + "&,,,", "no_buttons"),
        (PREFIX + "garbage", "no_separator"),
        (b"junk wE9ryARX: \xff\xfe\x00&\x01", "unknown_button"),
    ],
)
def test_bad_lines_are_rejected_with_a_reason(line: str | bytes, reason: str) -> None:
    r = rejected(line)
    assert r.reason == reason, r
    assert r.detail  # says what was expected


def matrix_text(values: list[str]) -> str:
    return " ".join(values) + " "


@pytest.mark.parametrize(
    "values, reason",
    [
        (R_MAT.split()[:15], "value_count"),
        (R_MAT.split() + ["0"], "value_count"),
        (["nan"] + R_MAT.split()[1:], "non_finite"),
        (R_MAT.split()[:3] + ["inf"] + R_MAT.split()[4:], "non_finite"),
        (R_MAT.split()[:5] + ["-Infinity"] + R_MAT.split()[6:], "non_finite"),
        (["1e308"] * 12 + ["0", "0", "0", "1"], "not_rigid"),
        (["2"] + R_MAT.split()[1:], "not_rigid"),  # scaled row
        ("1 0 0 0 0 1 0 0 0 1 0 0 0 0 0 1".split(), "not_rigid"),  # two equal rows
        ("-1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 1".split(), "reflection"),
        ("1 0 0 0 0 1 0 0 0 0 1 0 0 0.5 0 1".split(), "bottom_row"),
        ("1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 2".split(), "bottom_row"),
        ("1 0 0 9 0 1 0 0 0 0 1 0 0 0 0 1".split(), "out_of_reach"),
        (R_MAT.split()[:4] + ["0x1p0"] + R_MAT.split()[5:], "not_a_number"),
    ],
)
def test_bad_matrices(values: list[str], reason: str) -> None:
    # Alone, a bad matrix rejects the line ...
    assert rejected(PREFIX + f"r:{matrix_text(values)}&{BUTTONS}").reason == reason
    # ... next to a good one, only that side is dropped (and reported).
    p = ok(PREFIX + f"r:{matrix_text(values)}|l:{L_MAT}&{BUTTONS}")
    assert set(p.poses) == {"l"}
    assert [d.reason for d in p.dropped] == [reason]
    assert "pose 'r'" in p.dropped[0].detail


def test_rigid_tolerance_accepts_rounded_values_and_rejects_more() -> None:
    # 0.5% scale error on the rotation -> |RRᵀ − I| ≈ 0.01, at the edge; 5% is clearly out.
    good = "1.004 0 0 0 0 1 0 0 0 0 1 0 0 0 0 1".split()
    bad = "1.05 0 0 0 0 1 0 0 0 0 1 0 0 0 0 1".split()
    ok(PREFIX + f"r:{matrix_text(good)}&{BUTTONS}")
    assert rejected(PREFIX + f"r:{matrix_text(bad)}&{BUTTONS}").reason == "not_rigid"


def test_normalize_buttons_converts_oculus_reader_tuples() -> None:
    raw = {"A": np.bool_(True), "rightTrig": (0.5,), "rightGrip": [1.0], "rightJS": np.array([0.1, -0.2]), "x": "keep"}
    assert normalize_buttons(raw) == {
        "A": True,
        "rightTrig": 0.5,
        "rightGrip": 1.0,
        "rightJS": (0.1, -0.2),
        "x": "keep",
    }


def test_formatter_writes_the_app_format_byte_for_byte() -> None:
    p = ok(REAL_LINE)
    line = format_logcat_line(p.poses, p.buttons, wall_time=0.0, order=("r", "l"))
    payload = line.split(b"wE9ryARX: ", 1)[1]
    assert payload == REAL_LINE.split(b"wE9ryARX: ", 1)[1]
    assert format_matrix(np.eye(4)) == "1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 1 "
    assert format_buttons({"rightTrig": (0.5,)}) == "R,rightJS 0.000000 0.000000,rightTrig 0.500000,rightGrip 0.000000"


def test_analog_values_are_written_like_std_to_string_of_a_float() -> None:
    # std::to_string(float): the float32 value widened to double, "%f" (six decimals, rounded).
    text = format_buttons({"rightTrig": 1 / 3, "rightGrip": 1.0, "rightJS": (-0.0, -0.7)})
    assert text == "R,rightJS -0.000000 -0.700000,rightTrig 0.333333,rightGrip 1.000000"
    assert format_buttons({"leftTrig": 2e-7}) == "L,leftJS 0.000000 0.000000,leftTrig 0.000000,leftGrip 0.000000"


def test_parser_still_reads_short_numbers() -> None:
    # Older app builds and hand-written logs use "%g"-style numbers; both forms parse alike.
    short = "R,A,RG,rightJS 0 0,rightTrig 0.5,rightGrip 1,L,leftJS 0.1 -0.2,leftTrig 0,leftGrip 0"
    assert parse_buttons(short) == parse_buttons(BUTTONS)


# --- property-based ----------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_never_raises_on_arbitrary_text(text: str) -> None:
    out = parse_line(text)
    assert out is None or isinstance(out, (ParsedLine, Rejection))


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("rl:|&,. -0123456789eEnaifRLABXYGJTrThUSgipx\t")) | st.characters()))
def test_never_raises_on_arbitrary_payloads(text: str) -> None:
    out = parse_line(PREFIX + text)
    assert isinstance(out, (ParsedLine, Rejection))
    assert parse_payload(text) is not None


@settings(max_examples=200, deadline=None)
@given(st.binary())
def test_never_raises_on_arbitrary_bytes(data: bytes) -> None:
    for line in (data, PREFIX.encode() + data):
        out = parse_line(line)
        assert out is None or isinstance(out, (ParsedLine, Rejection))


def rigid_pose(q: list[float], t: list[float]) -> np.ndarray:
    w, x, y, z = np.array(q) / np.linalg.norm(q)
    rot = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )
    pose = np.eye(4)
    pose[:3, :3], pose[:3, 3] = rot, t
    return pose


unit = st.floats(-1.0, 1.0, allow_nan=False)
quats = st.lists(unit, min_size=4, max_size=4).filter(lambda q: math.fsum(v * v for v in q) > 0.01)
translations = st.lists(st.floats(-1.5, 1.5, allow_nan=False), min_size=3, max_size=3)
poses_st = st.builds(rigid_pose, quats, translations)


@st.composite
def button_maps(draw: st.DrawFn) -> dict:
    buttons: dict = {}
    sides = draw(st.sampled_from([("R",), ("L",), ("R", "L")]))
    for side in sides:
        bools = RIGHT_BOOLS if side == "R" else LEFT_BOOLS
        prefix = "right" if side == "R" else "left"
        for b in bools:
            buttons[b] = draw(st.booleans())
        buttons[prefix + "JS"] = (draw(unit), draw(unit))
        buttons[prefix + "Trig"] = draw(st.floats(0.0, 1.0))
        buttons[prefix + "Grip"] = draw(st.floats(0.0, 1.0))
    return buttons


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["r", "l"]), poses_st, min_size=1),
    button_maps(),
    st.booleans(),
    st.floats(0, 2e9),
)
def test_round_trip_of_generated_lines(poses: dict, buttons: dict, swap: bool, wall: float) -> None:
    order = ("l", "r") if swap else ("r", "l")
    line = format_logcat_line(poses, buttons, wall_time=wall, order=order)
    p = ok(line)
    assert set(p.poses) == set(poses) and p.dropped == ()
    for side, pose in poses.items():
        np.testing.assert_allclose(p.poses[side], pose, atol=1e-5)
    assert set(p.buttons) == set(buttons)
    for key, value in buttons.items():
        if isinstance(value, bool):
            assert p.buttons[key] is value
        else:
            np.testing.assert_allclose(p.buttons[key], value, atol=1e-5)
    # The payload alone parses the same way.
    q = parse_payload(format_payload(poses, buttons, order))
    assert isinstance(q, ParsedLine) and q.buttons == p.buttons


TOKENS = ["R", "L", *RIGHT_BOOLS, *LEFT_BOOLS, "rightJS 0 0", "rightJS 0.5 -1", "rightTrig 0.5", "rightGrip 1",
          "leftJS 0.1 -0.2", "leftTrig 0", "leftGrip 2", "rightTrig nan", "leftJS 1", " R", "rightGrip x"]  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(button_maps())
def test_button_fast_path_agrees_with_the_token_parser_on_app_output(buttons: dict) -> None:
    text = format_buttons(buttons)
    fast = parse_buttons(text)
    assert isinstance(fast, dict) and fast == parse_buttons_tokens(text)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=14))
def test_button_fast_path_agrees_with_the_token_parser_on_any_token_list(tokens: list[str]) -> None:
    text = ",".join(tokens)
    assert parse_buttons(text) == parse_buttons_tokens(text)
