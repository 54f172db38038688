"""RobotServer over real loopback sockets: validation, robustness, clamping, publishers."""

from __future__ import annotations

import os
import pickle
import time

import msgpack
import numpy as np
import pytest
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st

from frankateach.constants import MAX_MESSAGE_BYTES, ROBOT_WORKSPACE_MAX, ROBOT_WORKSPACE_MIN
from frankateach.errors import FrankaTeachError, RobotServerError
from frankateach.messages import FrankaAction, MsgpackCodec, PickleCodec
from frankateach.network import ReqClient, Subscriber, endpoint
from frankateach.port_holder import PortInUseError
from frankateach.server_base import RobotServer, clamp_to_workspace
from tests.fakes import HOME_POS, TargetBackend, free_ports, served
from tests.fakes.net import wait_until_bindable

HOST = "127.0.0.1"
CODECS = [MsgpackCodec(), PickleCodec()]
CODEC_IDS = ["msgpack", "pickle"]
VALID_POS = [0.42, -0.05, 0.31]


def action_map(**overrides) -> dict:
    m = {"pos": VALID_POS, "quat": [0.0, 0.0, 0.0, 1.0], "gripper": 0.0, "reset": False,
         "timestamp": 1.0}
    m.update(overrides)
    return m


def raw_pickled_action(fields: dict) -> bytes:
    obj = object.__new__(FrankaAction)
    obj.__dict__.update(fields)
    return pickle.dumps(obj)


def encode_map(codec, fields: dict) -> bytes:
    return msgpack.packb(fields) if codec.name == "msgpack" else raw_pickled_action(fields)


nan, inf = float("nan"), float("inf")
BAD_REQUESTS = {
    "wrong type": lambda c: encode_map(c, action_map(pos="0.4 0 0.3")),
    "wrong length": lambda c: encode_map(c, action_map(pos=[0.4, 0.0])),
    "missing field": lambda c: encode_map(
        c, {k: v for k, v in action_map().items() if k != "quat"}
    ),
    "unknown field": lambda c: encode_map(c, action_map(velocity=1.0)),
    "nan": lambda c: encode_map(c, action_map(pos=[nan, 0.0, 0.3])),
    "inf": lambda c: encode_map(c, action_map(timestamp=inf)),
    "zero quaternion": lambda c: encode_map(c, action_map(quat=[0.0, 0.0, 0.0, 0.0])),
    "non-unit quaternion": lambda c: encode_map(c, action_map(quat=[0.0, 0.0, 0.5, 0.5])),
    "gripper out of range": lambda c: encode_map(c, action_map(gripper=2.0)),
    "oversized": lambda c: b"\x00" * (MAX_MESSAGE_BYTES + 10),
    "unknown command": lambda c: b"get_status",
    "empty": lambda c: b"",
    "malicious pickle": lambda c: b"cos\nsystem\n(S'true'\ntR.",
}


@pytest.fixture(params=CODECS, ids=CODEC_IDS)
def running(request):
    backend = TargetBackend()
    with served(backend, codec=request.param) as server:
        client = ReqClient(HOST, server.control_port, timeout_s=3.0)
        yield server, backend, client
        client.close()


def test_every_bad_request_gets_an_error_reply_and_the_target_is_kept(running):
    server, backend, client = running
    codec = server.codec
    first = codec.decode_reply(client.request(codec.encode(_action(VALID_POS))))
    np.testing.assert_array_equal(first.pos, VALID_POS)
    for name, make in BAD_REQUESTS.items():
        reply = client.request(make(codec))
        with pytest.raises(RobotServerError) as err:
            codec.decode_reply(reply)
        text = str(err.value)
        assert "expected" in text or "exceeds" in text or "refusing" in text, (name, text)
        # The server keeps answering, and the arm keeps its last valid target.
        state = codec.decode_reply(client.request(b"get_state"))
        np.testing.assert_array_equal(state.pos, VALID_POS, err_msg=name)
    assert len(backend.applied) == 1
    assert server.errors == len(BAD_REQUESTS)
    assert server.last_error  # the last rejection is kept for the operator


def _action(pos, reset=False) -> FrankaAction:
    return FrankaAction(
        pos=np.array(pos, dtype=float),
        quat=np.array([0.0, 0.0, 0.0, 1.0]),
        gripper=0.0,
        reset=reset,
        timestamp=1.0,
    )


def test_clamp_to_workspace_function():
    inside = np.array([0.5, 0.0, 0.3])
    np.testing.assert_array_equal(clamp_to_workspace(inside), inside)
    np.testing.assert_array_equal(clamp_to_workspace([5.0, -5.0, -1.0]), [0.75, -0.4, 0.05])


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_action_outside_the_workspace_reaches_the_backend_clamped(codec):
    backend = TargetBackend()
    with served(backend, codec=codec) as server:
        sub = Subscriber(HOST, server.commanded_port)
        client = ReqClient(HOST, server.control_port, timeout_s=3.0)
        try:
            time.sleep(0.2)  # let the commanded-state subscriber join
            far = [2.0, -1.0, -0.5]
            reply = codec.decode_reply(client.request(codec.encode(_action(far))))
            expected = np.clip(far, ROBOT_WORKSPACE_MIN, ROBOT_WORKSPACE_MAX)
            np.testing.assert_array_equal(backend.applied[-1].pos, expected)
            np.testing.assert_array_equal(reply.pos, expected)
            commanded = sub.recv(2.0)
            assert commanded is not None, "no commanded state published"
            np.testing.assert_array_equal(codec.decode_commanded_feed(commanded).pos, expected)
        finally:
            client.close()
            sub.close()


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_state_publisher_streams_decodable_states(codec):
    with served(TargetBackend(), codec=codec) as server:
        sub = Subscriber(HOST, server.state_port)
        try:
            got = [sub.recv(2.0) for _ in range(3)]
            assert all(g is not None for g in got)
            if codec.name == "pickle":  # Franka-Teach's topic, so their subscribers receive it
                assert all(g.startswith(b"robot_state ") for g in got)
            states = [server.codec.decode_state_feed(g) for g in got]
            np.testing.assert_array_equal(states[-1].pos, HOME_POS)
            assert states[0].timestamp <= states[-1].timestamp
        finally:
            sub.close()


def test_backend_failure_becomes_an_error_reply():
    backend = TargetBackend(fail_with=RuntimeError("encoder fault"))
    with served(backend) as server:
        client = ReqClient(HOST, server.control_port, timeout_s=3.0)
        try:
            reply = client.request(server.codec.encode(_action(VALID_POS)))
            expected = "internal error: RuntimeError: encoder fault"
            with pytest.raises(RobotServerError, match=expected):
                server.codec.decode_reply(reply)
            server.codec.decode_reply(client.request(b"get_state"))  # still serving
        finally:
            client.close()


def test_latency_option_delays_action_replies():
    with served(TargetBackend(), latency_s=0.15) as server:
        client = ReqClient(HOST, server.control_port, timeout_s=3.0)
        try:
            t0 = time.monotonic()
            client.request(server.codec.encode(_action(VALID_POS)))
            assert time.monotonic() - t0 >= 0.15
        finally:
            client.close()


def test_start_fails_fast_when_the_control_port_is_taken():
    control, state, commanded = free_ports(3)
    ctx = zmq.Context.instance()
    squatter = ctx.socket(zmq.REP)
    squatter.setsockopt(zmq.LINGER, 0)
    squatter.bind(endpoint(HOST, control))
    server = RobotServer(TargetBackend(), host=HOST, ports=(control, state, commanded))
    try:
        t0 = time.monotonic()
        expected = rf"port {control} \(control\) on {HOST} is already in use by pid {os.getpid()}"
        with pytest.raises(PortInUseError, match=expected) as err:
            server.start()
        assert isinstance(err.value, FrankaTeachError)
        assert time.monotonic() - t0 < 4.0  # noticed the dead thread, did not sit out 5 s
        assert all(not t.is_alive() for t in server._threads)  # nothing left running
    finally:
        squatter.close()


def test_start_raises_when_the_state_port_is_taken():
    control, state, commanded = free_ports(3)
    ctx = zmq.Context.instance()
    squatter = ctx.socket(zmq.PUB)
    squatter.setsockopt(zmq.LINGER, 0)
    squatter.bind(endpoint(HOST, state))
    server = RobotServer(TargetBackend(), host=HOST, ports=(control, state, commanded))
    try:
        with pytest.raises(PortInUseError, match=rf"port {state} \(state\).*pid {os.getpid()}"):
            server.start()
        # The ports it had bound were released: a new server can take them all.
        squatter.close()
        # ZMQ closes sockets asynchronously (in its I/O thread): wait until all three ports are free.
        wait_until_bindable((control, state, commanded))
        again = RobotServer(TargetBackend(), host=HOST, ports=(control, state, commanded))
        again.start()
        again.stop()
    finally:
        squatter.close()


@pytest.fixture(scope="module")
def fuzz_servers():
    with served(TargetBackend(), codec=MsgpackCodec()) as m, served(
        TargetBackend(), codec=PickleCodec()
    ) as p:
        clients = [(s, ReqClient(HOST, s.control_port, 3.0)) for s in (m, p)]
        yield clients
        for _, c in clients:
            c.close()


@settings(max_examples=150, deadline=None)
@given(
    data=st.one_of(
        st.binary(max_size=300),
        st.binary(min_size=1, max_size=4).map(lambda b: b * 20000),  # oversized
    )
)
def test_arbitrary_bytes_always_get_a_reply_and_the_server_survives(fuzz_servers, data):
    for server, client in fuzz_servers:
        reply = client.request(data)  # a RobotTimeoutError here would mean the server died
        try:
            server.codec.decode_reply(reply)
        except RobotServerError:
            pass
        assert server.codec.decode_reply(client.request(b"get_state")).start_teleop
