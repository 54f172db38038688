"""The service's ready line (`robot_formats.service_ready`): encode/parse round trip, and any
other bytes give a `ReadyLineError` (never another exception)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robot_formats.service_ready import READY_PREFIX, ReadyLineError, ServiceReady, parse_ready_line

ports = st.integers(1, 65535)


@settings(max_examples=200, deadline=None)
@given(ports, st.none() | ports, st.none() | st.text(min_size=1, max_size=80))
def test_round_trip(port, openpi_port, key) -> None:
    ready = ServiceReady(port, openpi_port, key)
    line = ready.encode()
    assert line.startswith(READY_PREFIX) and line.endswith("\n") and line.count("\n") == 1
    assert parse_ready_line(line) == ready
    assert parse_ready_line(line.encode()) == ready


@pytest.mark.parametrize(
    "line, words",
    [
        ("vla-service ready port=4", "start with"),
        (READY_PREFIX + "[1]", "JSON object"),
        (READY_PREFIX + "{", "JSON object"),
        (READY_PREFIX + '{"port": 0}', "port must be"),
        (READY_PREFIX + '{"port": true}', "port must be"),
        (READY_PREFIX + '{"port": 80, "openpi_port": "x"}', "openpi_port"),
        (READY_PREFIX + '{"port": 80, "key": 5}', "key must be"),
        (READY_PREFIX + '{"port": 80, "secret": 5}', "unknown fields"),
        (b"\xff" * 10, "UTF-8"),
        (b"x" * 5000, "at most"),
    ],
)
def test_bad_lines_say_what_was_expected(line, words) -> None:
    with pytest.raises(ReadyLineError, match=words):
        parse_ready_line(line)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(lambda t: READY_PREFIX + t))
def test_arbitrary_input_only_raises_ready_line_errors(data) -> None:
    try:
        parse_ready_line(data)
    except ReadyLineError:
        pass
