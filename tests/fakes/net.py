"""Network helpers for tests: free loopback ports, a served backend, misbehaving ZMQ peers."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator, Sequence

import zmq

from frankateach.errors import FrankaTeachError
from frankateach.messages import Codec
from frankateach.network import endpoint
from frankateach.server_base import RobotBackend, RobotServer

LOCALHOST = "127.0.0.1"


def free_ports(n: int) -> list[int]:
    """Returns `n` distinct TCP ports that were free on 127.0.0.1 a moment ago."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((LOCALHOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port() -> int:
    return free_ports(1)[0]


def wait_until_bindable(ports: Sequence[int], timeout_s: float = 5.0, host: str = LOCALHOST) -> None:
    """Waits until every port in `ports` can be bound on `host` (with SO_REUSEADDR, as ZMQ binds).

    ZMQ closes a socket in its I/O thread, after `close()` has returned: a port a closed ZMQ socket
    held frees a moment later. This waits for that to have happened, so that a bind which follows
    can only fail for a real reason.

    Raises:
        AssertionError: a port is still held after `timeout_s` seconds.
    """
    deadline = time.monotonic() + timeout_s
    for port in ports:
        while True:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind((host, port))
                    break
                except OSError:
                    pass
            if time.monotonic() > deadline:
                raise AssertionError(f"port {port} on {host} still held {timeout_s} s after its socket was closed")
            time.sleep(0.02)


@contextlib.contextmanager
def served(
    backend: RobotBackend, codec: Codec | None = None, latency_s: float = 0.0, attempts: int = 5
) -> Iterator[RobotServer]:
    """Runs a `RobotServer` for `backend` on free loopback ports; stops it on exit."""
    last: Exception | None = None
    for _ in range(attempts):  # a port may be taken between choosing and binding it
        server = RobotServer(
            backend, host=LOCALHOST, codec=codec, latency_s=latency_s, ports=tuple(free_ports(3))
        )
        try:
            server.start()
        except (zmq.ZMQError, FrankaTeachError) as exc:
            last = exc
            continue
        try:
            yield server
        finally:
            server.stop()
        return
    raise RuntimeError(f"could not start a RobotServer: {last}")


class SilentServer:
    """Binds a ROUTER on `port`, takes requests and never answers them."""

    def __init__(self, port: int) -> None:
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.ROUTER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.bind(endpoint(LOCALHOST, port))

    def received(self, timeout_s: float = 1.0) -> int:
        """Drains and counts the requests that arrived (none is answered)."""
        n = 0
        while self._sock.poll(int(timeout_s * 1000)):
            self._sock.recv_multipart()
            n += 1
            timeout_s = 0.05
        return n

    def close(self) -> None:
        self._sock.close(linger=0)
        self._ctx.term()


class EchoServer:
    """A REP server that echoes each request after a per-request delay.

    Args:
        port: loopback port to bind.
        delays_s: delay before answering request i (the last value repeats).
    """

    def __init__(self, port: int, delays_s: Sequence[float] = (0.0,)) -> None:
        self.delays_s = list(delays_s)
        self.answered: list[bytes] = []
        self._stop = threading.Event()
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.REP)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.bind(endpoint(LOCALHOST, port))
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            if not self._sock.poll(20):
                continue
            msg = self._sock.recv()
            delay = self.delays_s[min(i, len(self.delays_s) - 1)]
            i += 1
            end = time.monotonic() + delay
            while time.monotonic() < end and not self._stop.is_set():
                time.sleep(0.005)
            self._sock.send(msg)
            self.answered.append(msg)
        self._sock.close(linger=0)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        self._ctx.term()
