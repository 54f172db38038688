"""`vla_server.arena.live` for API episodes: the configured port or the next free one on 127.0.0.1,
and the links the run page shows (a real foxglove-sdk server, a real protocol client)."""

from __future__ import annotations

import urllib.parse

import pytest

from robot_formats.recording import schemas as S
from robot_formats.recording.errors import RecordingError
from tests.foxglove_ws_client import FoxgloveClient, free_port
from tests.robot_fakes import free_port_block
from vla_server.arena.live import LIVE_HOST, LiveOptions, links, serve_episode


def test_a_taken_port_moves_the_episode_to_the_next_free_one() -> None:
    base = free_port_block(3)
    first = serve_episode(LiveOptions(base))
    try:
        second = serve_episode(LiveOptions(base))
        try:
            assert (first.host, first.port) == (LIVE_HOST, base)
            assert second.port == base + 1
            client = FoxgloveClient(second.url)
            try:
                assert S.TOPIC_JOINT_STATES in client.wait_channels({S.TOPIC_JOINT_STATES, "/camera/front/image"})
                assert "time" in client.server_info["capabilities"]  # sim time
            finally:
                client.close()
        finally:
            second.stop()
    finally:
        first.stop()


def test_no_free_port_in_the_range_is_a_clear_error() -> None:
    base = free_port_block(2)
    held = [serve_episode(LiveOptions(base), tries=1), serve_episode(LiveOptions(base + 1), tries=1)]
    try:
        with pytest.raises(RecordingError, match=rf"no free port in {base}\.\.{base + 1} on 127\.0\.0\.1"):
            serve_episode(LiveOptions(base), tries=2)
    finally:
        for s in held:
            s.stop()


def test_port_zero_is_any_free_port_and_options_round_trip() -> None:
    s = serve_episode(LiveOptions(0))
    try:
        assert s.port > 0
    finally:
        s.stop()
    opts = LiveOptions(free_port(), realtime=False)
    assert LiveOptions.from_dict(opts.to_dict()) == opts


def test_links_open_the_websocket_in_foxglove() -> None:
    got = links("ws://127.0.0.1:8766")
    assert got["url"] == "ws://127.0.0.1:8766"
    for key, base in (("foxglove_web", "https://app.foxglove.dev/~/view"), ("foxglove_desktop", "foxglove://open")):
        head, _, query = got[key].partition("?")
        assert head == base
        assert urllib.parse.parse_qs(query) == {"ds": ["foxglove-websocket"], "ds.url": ["ws://127.0.0.1:8766"]}
