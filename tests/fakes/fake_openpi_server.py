"""A fake openpi policy server on loopback, speaking openpi's wire format with our codec.

Behaves like openpi's ``WebsocketPolicyServer``: metadata frame on connect, msgpack request/reply
with ``"actions"`` and ``server_timing``, errors as a text frame then close 1011, ``GET /healthz``.
It records every observation it receives, can check an ``Api-Key``, add latency, and fail the
next request on demand. The default policy answers a DROID-shaped chunk: (10, 8) joint
velocities + gripper, row ``i`` filled with ``step + i / 100`` so tests can tell chunks apart.

Usage::

    with FakeOpenPIServer() as srv:
        client = WebsocketClientPolicy("127.0.0.1", srv.port)
"""

from __future__ import annotations

import http
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Self

import numpy as np
import websockets
from websockets.frames import CloseCode
from websockets.sync.server import Request, Response, ServerConnection, serve

from robot_formats.openpi_codec import OpenPICodecError, packb, unpackb

PolicyFn = Callable[[dict[str, Any]], Mapping[str, Any]]


class FakeOpenPIServer:
    """A threaded openpi-protocol server for tests; start/stop or use as a context manager."""

    def __init__(
        self,
        policy: PolicyFn | None = None,
        metadata: Mapping[str, Any] | None = None,
        api_key: str | None = None,
        latency_s: float = 0.0,
        action_shape: tuple[int, int] = (10, 8),
        host: str = "127.0.0.1",
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.ssl_context = ssl_context  # serve wss:// (a server context) instead of ws://
        self.port = 0
        self.metadata = dict(metadata) if metadata is not None else {"fake": True, "action_horizon": action_shape[0]}
        self.api_key = api_key
        self.latency_s = latency_s
        self.action_shape = action_shape
        self.requests: list[dict[str, Any]] = []
        self.connections = 0
        self._policy = policy or self._default_policy
        self._fail_next: str | None = None
        self._lock = threading.Lock()
        self._open: set[ServerConnection] = set()
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def _default_policy(self, obs: dict[str, Any]) -> dict[str, Any]:
        step = len(self.requests) - 1
        h, d = self.action_shape
        rows = step + np.arange(h, dtype=np.float64)[:, None] / 100.0
        return {"actions": np.broadcast_to(rows, (h, d)).astype(np.float32)}

    def fail_next(self, message: str) -> None:
        """Makes the next request fail with `message` (text frame, then close 1011)."""
        with self._lock:
            self._fail_next = message

    def _check(self, conn: ServerConnection, request: Request) -> Response | None:
        if request.path == "/healthz":
            return conn.respond(http.HTTPStatus.OK, "OK\n")
        if self.api_key is not None and request.headers.get("Authorization") != f"Api-Key {self.api_key}":
            return conn.respond(http.HTTPStatus.UNAUTHORIZED, "invalid API key\n")
        return None

    def _handle(self, conn: ServerConnection) -> None:
        with self._lock:
            self.connections += 1
            self._open.add(conn)
        try:
            self._serve(conn)
        finally:
            with self._lock:
                self._open.discard(conn)

    def _serve(self, conn: ServerConnection) -> None:
        conn.send(packb(self.metadata))
        prev_total_ms: float | None = None
        while True:
            try:
                raw = conn.recv(timeout=30.0)
            except (websockets.ConnectionClosed, TimeoutError):
                return
            t0 = time.monotonic()
            try:
                if isinstance(raw, str):
                    raise OpenPICodecError("expected a binary frame")
                obs = unpackb(raw)
                with self._lock:
                    self.requests.append(obs)
                    fail, self._fail_next = self._fail_next, None
                if fail is not None:
                    raise RuntimeError(fail)
                if self.latency_s:
                    time.sleep(self.latency_s)
                reply = dict(self._policy(obs))
                timing = {"infer_ms": (time.monotonic() - t0) * 1000.0}
                if prev_total_ms is not None:
                    timing["prev_total_ms"] = prev_total_ms
                reply["server_timing"] = timing
                conn.send(packb(reply))
            except websockets.ConnectionClosed:
                return
            except Exception as exc:  # noqa: BLE001 - reported to the client as openpi's server does
                try:
                    conn.send(f"{type(exc).__name__}: {exc}")
                    conn.close(CloseCode.INTERNAL_ERROR, "Internal server error. Traceback included in previous frame.")
                except websockets.ConnectionClosed:
                    pass
                return
            prev_total_ms = (time.monotonic() - t0) * 1000.0

    def start(self) -> Self:
        self._server = serve(
            self._handle, self.host, 0, compression=None, max_size=None, process_request=self._check,
            ssl=self.ssl_context,
        )
        self.port = self._server.socket.getsockname()[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-openpi", daemon=True)
        self._thread.start()
        return self

    def close_connections(self) -> None:
        """Drops every open connection (the server keeps listening): a network blip."""
        with self._lock:
            conns = list(self._open)
        for conn in conns:
            conn.close(CloseCode.GOING_AWAY, "dropped by test")

    def stop(self) -> None:
        """Stops listening and closes open connections."""
        if self._server is not None:
            self._server.shutdown()
            with self._lock:
                conns = list(self._open)
            for conn in conns:  # handlers would otherwise wait out their receive timeout
                conn.close(CloseCode.GOING_AWAY, "server stopping")
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
