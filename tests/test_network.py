"""ZMQ plumbing (ReqClient, serve_rep, Publisher, Subscriber) on real loopback sockets."""

from __future__ import annotations

import os
import threading
import time

import pytest

from frankateach.errors import RobotTimeoutError
from frankateach.network import Publisher, ReqClient, Subscriber, endpoint, serve_rep
from frankateach.port_holder import PortInUseError
from tests.fakes import EchoServer, SilentServer, free_port

HOST = "127.0.0.1"


def test_endpoint():
    assert endpoint("10.0.0.2", 8901) == "tcp://10.0.0.2:8901"


def test_request_to_silent_server_times_out_then_recovers_on_a_real_server():
    port = free_port()
    silent = SilentServer(port)
    client = ReqClient(HOST, port, timeout_s=0.3)
    try:
        t0 = time.monotonic()
        expected = r"no reply from tcp://127\.0\.0\.1:\d+ within 300 ms"
        with pytest.raises(RobotTimeoutError, match=expected):
            client.request(b"hello")
        elapsed = time.monotonic() - t0
        assert 0.25 <= elapsed < 0.3 + 2.0  # about the timeout (loose upper bound: loaded CI)
        assert client.timeouts == 1 and client.reconnects == 1
        assert silent.received() == 1  # the request did reach it; it just never answered
    finally:
        silent.close()
    echo = EchoServer(port)  # a real server appears on the same port
    try:
        assert client.request(b"after", timeout_s=3.0) == b"after"
        assert client.timeouts == 1
        assert client.last_rtt_s > 0
    finally:
        client.close()
        echo.close()


def test_request_with_no_server_at_all_times_out_and_rebuilds():
    client = ReqClient(HOST, free_port(), timeout_s=0.2)
    try:
        for i in range(1, 3):  # the socket stays usable: each call times out cleanly
            with pytest.raises(RobotTimeoutError):
                client.request(b"x")
            assert client.timeouts == i and client.reconnects == i
    finally:
        client.close()


def test_a_lost_reply_does_not_wedge_the_client_or_mix_up_replies():
    port = free_port()
    echo = EchoServer(port, delays_s=[0.8, 0.0])  # the first reply comes after the client gave up
    client = ReqClient(HOST, port, timeout_s=0.25)
    try:
        with pytest.raises(RobotTimeoutError):
            client.request(b"first")
        # The late reply to "first" goes to the discarded socket, never to the next call.
        assert client.request(b"second", timeout_s=5.0) == b"second"
        assert client.request(b"third", timeout_s=5.0) == b"third"
        deadline = time.monotonic() + 3.0
        while len(echo.answered) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert echo.answered == [b"first", b"second", b"third"]
    finally:
        client.close()
        echo.close()


def test_close_is_idempotent():
    client = ReqClient(HOST, free_port(), timeout_s=0.1)
    client.close()
    client.close()


def _run_rep(port: int, handler, stop: threading.Event) -> threading.Thread:
    ready = threading.Event()
    t = threading.Thread(
        target=serve_rep, args=(HOST, port, handler, stop), kwargs={"ready": ready, "poll_s": 0.02}
    )
    t.start()
    assert ready.wait(5.0)
    return t


def test_serve_rep_answers_every_request_and_stops_on_the_event():
    port, stop = free_port(), threading.Event()
    seen: list[bytes] = []

    def handler(data: bytes) -> bytes:
        seen.append(data)
        return data[::-1]

    t = _run_rep(port, handler, stop)
    client = ReqClient(HOST, port, timeout_s=3.0)
    try:
        assert [client.request(m) for m in (b"abc", b"", b"\x00\xff")] == [b"cba", b"", b"\xff\x00"]
        assert seen == [b"abc", b"", b"\x00\xff"]
    finally:
        client.close()
        stop.set()
        t.join(2.0)
    assert not t.is_alive()


# --------------------------------------------------------------------------------------------
# PUB/SUB
# --------------------------------------------------------------------------------------------


def _connected_pair(conflate: bool) -> tuple[Publisher, Subscriber]:
    """A publisher and a subscriber that has provably joined (no slow-joiner loss)."""
    port = free_port()
    pub = Publisher(HOST, port)
    sub = Subscriber(HOST, port, conflate=conflate)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        pub.publish(b"warmup")
        if sub.recv(0.05) is not None:
            break
    else:
        pytest.fail("subscriber never connected")
    while sub.recv(0.1) is not None:  # drain warm-up messages
        pass
    return pub, sub


def test_conflating_subscriber_keeps_only_the_newest_message():
    pub, sub = _connected_pair(conflate=True)
    try:
        for i in range(50):
            pub.publish(b"old-%d" % i)
        time.sleep(0.1)  # let the burst drain through the publisher's pipe
        pub.publish(b"newest")
        time.sleep(0.2)
        assert sub.recv(1.0) == b"newest"
        assert sub.recv(0.1) is None  # nothing older was kept
    finally:
        sub.close()
        pub.close()


def test_non_conflating_subscriber_sees_messages_in_order():
    pub, sub = _connected_pair(conflate=False)
    try:
        pub.publish(b"one")
        time.sleep(0.05)
        pub.publish(b"two")
        assert sub.recv(1.0) == b"one"
        assert sub.recv(1.0) == b"two"
    finally:
        sub.close()
        pub.close()


def test_recv_timeout_returns_none_after_about_the_timeout():
    port = free_port()
    pub = Publisher(HOST, port)
    sub = Subscriber(HOST, port)
    try:
        t0 = time.monotonic()
        assert sub.recv(0.2) is None
        assert 0.15 <= time.monotonic() - t0 < 2.0
    finally:
        sub.close()
        pub.close()


def test_publisher_never_blocks_without_subscribers():
    pub = Publisher(HOST, free_port(), hwm=2)
    try:
        t0 = time.monotonic()
        for _ in range(10_000):
            pub.publish(b"x" * 100)
        assert time.monotonic() - t0 < 10.0  # would hang forever if a send blocked
    finally:
        pub.close()


def test_publisher_port_clash_raises():
    port = free_port()
    pub = Publisher(HOST, port)
    try:
        with pytest.raises(
            PortInUseError, match=rf"port {port} \(camera 0\) on {HOST} is already in use by pid {os.getpid()}"
        ):
            Publisher(HOST, port, role="camera 0")
    finally:
        pub.close()
