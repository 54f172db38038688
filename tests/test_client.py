"""RobotClient against a real RobotServer (fake backend) on loopback sockets."""

from __future__ import annotations

import math

import numpy as np
import pytest

from frankateach.client import RobotClient
from frankateach.errors import ProtocolError, RobotServerError, RobotTimeoutError
from frankateach.messages import FrankaAction, FrankaState, MsgpackCodec, PickleCodec
from tests.fakes import HOME_POS, SilentServer, TargetBackend, free_port, served

CODECS = [MsgpackCodec(), PickleCodec()]
CODEC_IDS = ["msgpack", "pickle"]


def make_action(pos=(0.5, 0.1, 0.3), gripper=0.5, reset=False) -> FrankaAction:
    return FrankaAction(
        pos=np.array(pos, dtype=float),
        quat=np.array([0.0, 1.0, 0.0, 0.0]),
        gripper=gripper,
        reset=reset,
        timestamp=42.0,
    )


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_get_state_and_send_round_trip(codec):
    backend = TargetBackend()
    with served(backend, codec=codec) as server:
        client = RobotClient(port=server.control_port, codec=codec, timeout_s=3.0)
        try:
            s = client.get_state()
            assert isinstance(s, FrankaState)
            np.testing.assert_array_equal(s.pos, HOME_POS)
            reply = client.send(make_action())
            np.testing.assert_array_equal(reply.pos, [0.5, 0.1, 0.3])
            np.testing.assert_array_equal(reply.quat, [0.0, 1.0, 0.0, 0.0])
            assert reply.gripper == 0.5
            assert len(backend.applied) == 1 and backend.applied[0].timestamp == 42.0
            reply = client.send(make_action(reset=True))
            np.testing.assert_array_equal(reply.pos, HOME_POS)
            assert backend.resets == 1
        finally:
            client.close()


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_error_reply_raises_robot_server_error_and_client_keeps_working(codec):
    backend = TargetBackend()
    with served(backend, codec=codec) as server:
        client = RobotClient(port=server.control_port, codec=codec, timeout_s=3.0)
        try:
            client.send(make_action(pos=(0.4, 0.0, 0.2)))
            # The client codec encodes a NaN target; the server refuses it.
            bad = make_action(pos=(float("nan"), 0.0, 0.2))
            with pytest.raises(RobotServerError, match=r"'pos\[0\]'.*finite"):
                client.send(bad)
            s = client.get_state()
            np.testing.assert_array_equal(s.pos, [0.4, 0.0, 0.2])  # last valid target kept
            assert server.errors == 1
        finally:
            client.close()


def test_codec_mismatch_is_a_protocol_error_not_a_crash():
    with served(TargetBackend(), codec=MsgpackCodec()) as server:
        client = RobotClient(port=server.control_port, codec=PickleCodec(), timeout_s=3.0)
        try:
            with pytest.raises(ProtocolError):
                client.send(make_action())
            assert server.errors == 1
        finally:
            client.close()


def test_latency_stats_reflect_the_server_delay():
    delay = 0.05
    with served(TargetBackend(), latency_s=delay) as server:
        client = RobotClient(port=server.control_port, timeout_s=3.0)
        try:
            assert all(math.isnan(x) for x in client.latency_stats())
            for _ in range(8):
                client.send(make_action())
            last, mean, p95 = client.latency_stats()
            assert last >= delay and mean >= delay and p95 >= mean * 0.999
            assert mean < delay + 1.0  # loose: only catches a unit mistake (ms vs s)
        finally:
            client.close()


def test_latency_window_forgets_old_round_trips():
    delay = 0.3  # applied to actions only; get_state answers at once
    with served(TargetBackend(), latency_s=delay) as server:
        client = RobotClient(port=server.control_port, timeout_s=3.0, latency_window=3)
        try:
            for _ in range(2):
                client.send(make_action())
            assert client.latency_stats()[1] >= delay
            for _ in range(3):
                client.get_state()
            last, mean, p95 = client.latency_stats()
            assert p95 < delay  # the slow action round trips left the 3-sample window
        finally:
            client.close()


def test_timeout_against_a_silent_server():
    port = free_port()
    silent = SilentServer(port)
    client = RobotClient(port=port, timeout_s=0.2)
    try:
        with pytest.raises(RobotTimeoutError):
            client.get_state()
        assert client.timeouts == 1
        assert all(math.isnan(x) for x in client.latency_stats())  # a timeout is not a sample
    finally:
        client.close()
        silent.close()
