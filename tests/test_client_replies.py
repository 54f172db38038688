"""`vla_client.replies.parse_server_message`: every message the service encodes parses back to
itself; anything else is a `ProtocolViolation` that says what came."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from robot_formats.stream.messages import (
    ActionMessage,
    ConnectedMessage,
    ErrorMessage,
    StatsMessage,
    encode_server_message,
)
from vla_client.errors import ProtocolViolation
from vla_client.replies import parse_server_message

num = st.floats(-1e6, 1e6, allow_nan=False)
count = st.integers(0, 1 << 40)
text = st.text(max_size=40)

messages = st.one_of(
    st.builds(ActionMessage, frame_id=count, timestamp=num,
              action=st.tuples(*[st.floats(-1.0, 1.0)] * 7), safety_score=st.floats(0.0, 1.0),
              latency_ms=st.floats(0.0, 1e4), smoothed=st.booleans()),
    st.builds(ErrorMessage, message=text),
    st.builds(StatsMessage, session_id=text, runtime_seconds=num, total_frames=count, dropped_frames=count,
              drop_rate_percent=num, target_fps=num, actual_fps=num, avg_latency_ms=num,
              frame_queue_size=count, action_queue_size=count),
    st.builds(ConnectedMessage, session_id=text, model=text, target_fps=num, smoothing=st.booleans(),
              safety=st.booleans()),
)


@given(messages)
def test_every_encoded_server_message_parses_back_to_itself(msg) -> None:
    assert parse_server_message(encode_server_message(msg)) == msg


@pytest.mark.parametrize(
    "raw, words",
    [
        (b'{"type":"error","message":"x"}', "server message: expected a JSON text frame, got a binary frame"),
        ("{nope", "server message: invalid JSON"),
        ("[1, 2]", "server message: expected a JSON object, got list"),
        ('{"type":"hello"}', "unknown message type 'hello'"),
        ('{"type":"error"}', "error.message: expected a string, got None"),
        ('{"type":"action","action":[0,0,0,0,0,0]}', "expected a list of 7 numbers"),
    ],
)
def test_a_bad_frame_says_what_came(raw: str | bytes, words: str) -> None:
    with pytest.raises(ProtocolViolation) as err:
        parse_server_message(raw)
    assert words in str(err.value)
