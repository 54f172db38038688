"""ZMQ plumbing shared by the robot servers and the daemon.

* `ReqClient`: a REQ socket that never wedges. Every call has a timeout; after a timeout the
  socket is closed and rebuilt (the "lazy pirate" pattern) so the next call starts clean.
* `serve_rep`: a REP loop that polls with a timeout, so it notices the stop event.
* `Publisher` / `Subscriber`: PUB/SUB with bounded buffers; the subscriber keeps only the newest
  message (CONFLATE) and every receive takes a timeout.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import zmq

from frankateach.constants import REQUEST_TIMEOUT_S
from frankateach.errors import RobotTimeoutError
from frankateach.port_holder import PortInUseError, describe_port_in_use, is_address_in_use

log = logging.getLogger(__name__)


def endpoint(host: str, port: int) -> str:
    """Returns the tcp endpoint for `host`:`port`."""
    return f"tcp://{host}:{port}"


def bind(sock: zmq.Socket, host: str, port: int, role: str) -> None:
    """Binds `sock` to `host`:`port`; a port in use raises `PortInUseError` naming its holder.

    Args:
        role: what the port is for ("state", "camera 0", ...), for the message.
    """
    try:
        sock.bind(endpoint(host, port))
    except zmq.ZMQError as exc:
        if is_address_in_use(exc):
            sock.close(linger=0)
            raise PortInUseError(describe_port_in_use(host, port, role)) from None
        raise


class ReqClient:
    """REQ socket with a per-call timeout and rebuild-on-timeout.

    Attributes:
        timeouts: how many calls timed out since creation.
        reconnects: how many times the socket was rebuilt.
        last_rtt_s: round trip of the last successful call, seconds.
    """

    def __init__(
        self,
        host: str,
        port: int,
        timeout_s: float = REQUEST_TIMEOUT_S,
        context: zmq.Context | None = None,
    ) -> None:
        self.address = endpoint(host, port)
        self.timeout_s = float(timeout_s)
        self._ctx = context or zmq.Context.instance()
        self._sock: zmq.Socket | None = None
        self.timeouts = 0
        self.reconnects = 0
        self.last_rtt_s = float("nan")
        self._connect()

    def _connect(self) -> None:
        sock = self._ctx.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        # Allow a new request even if a reply never came; the socket is rebuilt anyway.
        sock.setsockopt(zmq.REQ_RELAXED, 1)
        sock.setsockopt(zmq.REQ_CORRELATE, 1)
        sock.connect(self.address)
        self._sock = sock

    def _rebuild(self) -> None:
        if self._sock is not None:
            self._sock.close(linger=0)
        self.reconnects += 1
        self._connect()

    def request(self, payload: bytes, timeout_s: float | None = None) -> bytes:
        """Sends `payload` and returns the reply bytes.

        Raises:
            RobotTimeoutError: no reply within the timeout (the socket has been rebuilt).
        """
        timeout = self.timeout_s if timeout_s is None else timeout_s
        assert self._sock is not None
        t0 = time.monotonic()
        try:
            if not self._sock.poll(int(timeout * 1000), zmq.POLLOUT):
                raise zmq.Again()
            self._sock.send(payload, zmq.NOBLOCK)
            remaining = max(0.0, timeout - (time.monotonic() - t0))
            if self._sock.poll(int(remaining * 1000), zmq.POLLIN):
                reply = self._sock.recv(zmq.NOBLOCK)
                self.last_rtt_s = time.monotonic() - t0
                return reply
        except zmq.ZMQError as exc:
            log.debug("REQ %s: %s", self.address, exc)
        self.timeouts += 1
        self._rebuild()
        raise RobotTimeoutError(
            f"no reply from {self.address} within {timeout * 1000:.0f} ms (socket rebuilt)"
        )

    def close(self) -> None:
        """Closes the socket (idempotent)."""
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None


def serve_rep(
    host: str,
    port: int,
    handler: Callable[[bytes], bytes],
    stop: threading.Event,
    poll_s: float = 0.05,
    context: zmq.Context | None = None,
    ready: threading.Event | None = None,
) -> None:
    """Binds a REP socket and answers each request with `handler(request)` until `stop` is set.

    `handler` must always return bytes (an error reply for bad input); it is never given
    a chance to leave the REP socket without an answer.
    """
    ctx = context or zmq.Context.instance()
    sock = ctx.socket(zmq.REP)
    sock.setsockopt(zmq.LINGER, 0)
    bind(sock, host, port, "control")
    if ready is not None:
        ready.set()
    try:
        while not stop.is_set():
            if not sock.poll(int(poll_s * 1000), zmq.POLLIN):
                continue
            frames = sock.recv_multipart(zmq.NOBLOCK)
            request = frames[0] if len(frames) == 1 else b"".join(frames)
            sock.send(handler(request))
    finally:
        sock.close(linger=0)


class Publisher:
    """A PUB socket that never blocks: when subscribers are slow, messages are dropped.

    Raises:
        PortInUseError: the port is taken (the message names the holding process).
    """

    def __init__(
        self, host: str, port: int, hwm: int = 4, context: zmq.Context | None = None, role: str = "publisher"
    ) -> None:
        self._ctx = context or zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.PUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.SNDHWM, hwm)
        bind(self._sock, host, port, role)
        self.dropped = 0

    def publish(self, payload: bytes) -> None:
        """Sends `payload` to every subscriber, dropping it if the send would block."""
        try:
            self._sock.send(payload, zmq.NOBLOCK)
        except zmq.Again:
            self.dropped += 1

    def close(self) -> None:
        self._sock.close(linger=0)


def sub_socket(
    host: str, port: int, conflate: bool = True, topic: bytes = b"", context: zmq.Context | None = None,
    hwm: int = 2,
) -> zmq.Socket:
    """A connected SUB socket: no linger, an `hwm`-message buffer, newest-only when `conflate`.

    Args:
        topic: prefix filter (b"" for everything; e.g. Franka-Teach's b"robot_state").
        hwm: messages buffered before newer ones are dropped (a stream read in full needs room
            for the longest pause of its reader).
    """
    sock = (context or zmq.Context.instance()).socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    if conflate:
        sock.setsockopt(zmq.CONFLATE, 1)
    sock.setsockopt(zmq.RCVHWM, hwm)
    sock.setsockopt(zmq.SUBSCRIBE, topic)
    sock.connect(endpoint(host, port))
    return sock


class Subscriber:
    """A SUB socket that keeps only the newest message; every receive has a timeout."""

    def __init__(
        self, host: str, port: int, conflate: bool = True, context: zmq.Context | None = None,
        topic: bytes = b"",
    ) -> None:
        self._sock = sub_socket(host, port, conflate, topic, context)

    def recv(self, timeout_s: float) -> bytes | None:
        """Returns the newest message, or None if none arrived within `timeout_s`."""
        if self._sock.poll(int(timeout_s * 1000), zmq.POLLIN):
            return self._sock.recv(zmq.NOBLOCK)
        return None

    def close(self) -> None:
        self._sock.close(linger=0)
