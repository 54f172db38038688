"""`/v1/stream` message parsing: every client message type, every bad input, and a fuzz test that
nothing but `ProtocolError` ever comes out of the parser."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robot_formats.stream.errors import (
    BadImage,
    InvalidField,
    InvalidJSON,
    MessageTooLarge,
    ProtocolError,
    UnknownMessageType,
)
from robot_formats.stream.messages import (
    ActionMessage,
    AuthMessage,
    CloseRequest,
    ConnectedMessage,
    ErrorMessage,
    FrameMessage,
    StatsMessage,
    StatsRequest,
    encode_server_message,
)
from robot_formats.stream.parse import ParseLimits, parse_client_message
from tests.vla_service import frame_url

AUTH = {"type": "auth", "api_key": "vla_x", "model": "color-reach", "robot_type": "franka_panda",
        "target_fps": 10, "enable_smoothing": True, "enable_safety": True}


def _frame(**kw: object) -> dict:
    d = {"type": "frame", "image": frame_url(32, 24), "instruction": "pick up the red cube"}
    d.update(kw)
    return d


def test_auth_parses_with_and_without_alpha() -> None:
    m = parse_client_message(json.dumps(AUTH))
    assert m == AuthMessage("vla_x", "color-reach", "franka_panda", 10.0, True, True, None)
    m2 = parse_client_message(json.dumps({**AUTH, "smoothing_alpha": 0.25}))
    assert isinstance(m2, AuthMessage) and m2.smoothing_alpha == 0.25


def test_frame_parses_image_state_and_wrist() -> None:
    state = {"pose": [0.5, 0, 0.3, 3.14, 0, 0], "velocity": [0.0] * 6}
    m = parse_client_message(json.dumps(_frame(robot_state=state, wrist_image=frame_url(16, 16, seed=1))))
    assert isinstance(m, FrameMessage)
    assert (m.width, m.height) == (32, 24) and m.jpeg[:2] == b"\xff\xd8"
    assert m.robot_state is not None and m.robot_state.pose[0] == 0.5 and m.robot_state.velocity == (0.0,) * 6
    assert m.wrist_jpeg is not None
    bare = parse_client_message(json.dumps(_frame()))
    assert isinstance(bare, FrameMessage) and bare.robot_state is None and bare.wrist_jpeg is None
    no_vel = parse_client_message(json.dumps(_frame(robot_state={"pose": [0.5, 0, 0.3, 0, 0, 0], "gripper": -1})))
    assert isinstance(no_vel, FrameMessage) and no_vel.robot_state.velocity is None  # type: ignore[union-attr]


def test_stats_and_close() -> None:
    assert parse_client_message('{"type":"stats"}') == StatsRequest()
    assert parse_client_message('{"type":"close"}') == CloseRequest()


@pytest.mark.parametrize(
    ("raw", "error", "text"),
    [
        ("{not json", InvalidJSON, "invalid JSON"),
        ("[1, 2]", InvalidJSON, "expected a JSON object, got list"),
        ('"auth"', InvalidJSON, "got str"),
        (b'{"type":"stats"}', InvalidJSON, "binary frame"),
        ('{"kind":"auth"}', UnknownMessageType, "missing field 'type'"),
        ('{"type":"subscribe"}', UnknownMessageType, "unknown message type 'subscribe'"),
        ('{"type":"stats","extra":1}', InvalidField, "unknown field(s) ['extra']"),
        (
            json.dumps({k: v for k, v in AUTH.items() if k != "model"}),
            InvalidField,
            "missing required field(s) ['model']",
        ),
        (json.dumps({**AUTH, "target_fps": "10"}), InvalidField, "auth.target_fps: expected a number, got str"),
        (json.dumps({**AUTH, "target_fps": True}), InvalidField, "auth.target_fps: expected a number, got bool"),
        (json.dumps({**AUTH, "target_fps": 0}), InvalidField, "auth.target_fps: expected 0.1..1000"),
        (json.dumps({**AUTH, "enable_safety": "yes"}), InvalidField, "auth.enable_safety: expected true or false"),
        (json.dumps({**AUTH, "smoothing_alpha": 0}), InvalidField, "0 < alpha <= 1"),
        (json.dumps({**AUTH, "smoothing_alpha": 1.5}), InvalidField, "0 < alpha <= 1"),
        (json.dumps({**AUTH, "api_key": ""}), InvalidField, "auth.api_key: expected a non-empty string"),
        (json.dumps({**AUTH, "targetFps": 10}), InvalidField, "unknown field(s) ['targetFps']"),
        (json.dumps({"type": "frame", "instruction": "x"}), InvalidField, "missing required field(s) ['image']"),
        (json.dumps(_frame(instruction=5)), InvalidField, "frame.instruction: expected a string, got int"),
        (json.dumps(_frame(instruction="x" * 1001)), InvalidField, "at most 1000 characters"),
        (json.dumps(_frame(image=123)), BadImage, "frame.image: expected a string"),
        (json.dumps(_frame(image="data:image/png;base64,iVBORw0KGgo=")), BadImage, "data:image/jpeg;base64,"),
        (json.dumps(_frame(image="data:image/jpeg;base64,")), BadImage, "empty base64 payload"),
        (json.dumps(_frame(image="data:image/jpeg;base64,@@@@")), BadImage, "invalid base64"),
        (json.dumps(_frame(image="data:image/jpeg;base64,aGVsbG8gd29ybGQ=")), BadImage, "not a JPEG"),
        (json.dumps(_frame(image="data:image/jpeg;base64,/9j/AAAA")), BadImage, "not a readable JPEG"),
        (json.dumps(_frame(robot_state=[1, 2])), InvalidField, "frame.robot_state: expected an object"),
        (json.dumps(_frame(robot_state={"velocity": [0] * 6})), InvalidField, "missing required field(s) ['pose']"),
        (
            json.dumps(_frame(robot_state={"pose": [0] * 5})),
            InvalidField,
            "pose: expected a list of 6 numbers, got a list of 5",
        ),
        (
            json.dumps(_frame(robot_state={"pose": [0] * 6, "velocity": "fast"})),
            InvalidField,
            "velocity: expected a list of 6",
        ),
        (
            json.dumps(_frame(robot_state={"pose": [0, 0, "z", 0, 0, 0]})),
            InvalidField,
            "pose[2]: expected a number, got str",
        ),
        (
            json.dumps(_frame(robot_state={"pose": [0] * 6, "gripper": 2})),
            InvalidField,
            "gripper: expected -1 (open) .. 1",
        ),
        (json.dumps(_frame(robot_state={"pose": [0] * 6, "torque": 1})), InvalidField, "unknown field(s) ['torque']"),
    ],
)
def test_bad_input_gets_a_typed_error_naming_the_problem(raw: str | bytes, error: type, text: str) -> None:
    with pytest.raises(error) as info:
        parse_client_message(raw)
    assert text in str(info.value)
    assert isinstance(info.value, ProtocolError)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_robot_state_is_refused(literal: str) -> None:
    raw = json.dumps(_frame()).rstrip("}") + f', "robot_state": {{"pose": [0.5, 0, {literal}, 0, 0, 0]}}}}'
    with pytest.raises(InvalidField, match=r"frame.robot_state.pose\[2\]: expected a finite number"):
        parse_client_message(raw)
    raw_v = (
        json.dumps(_frame()).rstrip("}") + f', "robot_state": {{"pose": [0]*6, "velocity": [{literal},0,0,0,0,0]}}}}'
    )
    with pytest.raises(InvalidField):
        parse_client_message(raw_v.replace("[0]*6", "[0,0,0,0,0,0]"))


def test_message_size_limit_is_configurable() -> None:
    raw = json.dumps(_frame(image=frame_url(320, 240)))
    limits = ParseLimits(max_message_bytes=len(raw.encode()) - 1)
    with pytest.raises(MessageTooLarge, match=f"message is {len(raw.encode())} bytes; the limit is"):
        parse_client_message(raw, limits)
    assert isinstance(parse_client_message(raw, ParseLimits(max_message_bytes=len(raw.encode()))), FrameMessage)


def test_oversized_image_dimensions_are_refused() -> None:
    with pytest.raises(BadImage, match="each side must be 1..40"):
        parse_client_message(json.dumps(_frame(image=frame_url(64, 48))), ParseLimits(max_image_side=40))


def test_server_messages_encode_exactly_the_documented_fields() -> None:
    c = json.loads(encode_server_message(ConnectedMessage("sid", "m", 10.0, True, False)))
    assert c == {"type": "connected", "session_id": "sid", "status": "ready",
                 "config": {"model": "m", "target_fps": 10.0, "smoothing": True, "safety": False}}
    a = json.loads(encode_server_message(ActionMessage(3, 1.5, (0.1,) * 7, 0.9, 12.5, True)))
    assert a == {"type": "action", "frame_id": 3, "timestamp": 1.5, "action": [0.1] * 7, "safety_score": 0.9,
                 "latency_ms": 12.5, "smoothed": True}
    s = json.loads(encode_server_message(StatsMessage("sid", 1.0, 10, 2, 20.0, 10.0, 8.0, 5.0, 0, 1)))
    assert list(s) == ["type", "session_id", "runtime_seconds", "total_frames", "dropped_frames", "drop_rate_percent",
                       "target_fps", "actual_fps", "avg_latency_ms", "frame_queue_size", "action_queue_size"]
    assert json.loads(encode_server_message(ErrorMessage("bad"))) == {"type": "error", "message": "bad"}
    with pytest.raises(ValueError):
        encode_server_message(ActionMessage(0, 0.0, (float("nan"),) * 7, 1.0, 0.0, False))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=200),
        st.binary(max_size=64),
        json_values.map(json.dumps),
        st.dictionaries(
            st.sampled_from(sorted({*AUTH, "image", "instruction", "robot_state", "wrist_image", "smoothing_alpha"})),
            json_values,
            max_size=9,
        ).map(lambda d: json.dumps({"type": d.pop("type", "auth"), **d})),
        st.sampled_from(["auth", "frame", "stats", "close"]).flatmap(
            lambda t: st.dictionaries(st.text(max_size=10), json_values, max_size=4).map(
                lambda d: json.dumps({**d, "type": t})
            )
        ),
    )
)
def test_parser_only_ever_raises_protocol_errors(raw: str | bytes) -> None:
    try:
        parse_client_message(raw)
    except ProtocolError as exc:
        assert str(exc)
