"""`VLAStreamingClient` and `SyncVLAStreamingClient` against a small `/v1/stream` server written
to the issue's spec (below), on a free loopback port: handshake, actions, errors, refusals and
their close codes, timeouts, reconnect with backoff, revocation while away, overflow, close."""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import websockets
from PIL import Image
from websockets.sync.server import ServerConnection, serve

from robot_formats.stream import limits as L
from robot_formats.stream.errors import ProtocolError
from robot_formats.stream.messages import FrameMessage
from robot_formats.stream.parse import parse_client_message
from vla_client import (
    AuthError,
    Backoff,
    ConnectionLost,
    ModelNotFound,
    NotConnected,
    RateLimitError,
    ServerError,
    SessionRejected,
    SyncVLAStreamingClient,
    Timeout,
    VLAStreamingClient,
)

KEY = "vla_good_key"
IMG = np.full((48, 64, 3), 120, np.uint8)


class SpecServer:
    """The `/v1/stream` protocol of issue 10 §1, small: keys → (max sessions, max fps)."""

    def __init__(self) -> None:
        self.keys: dict[str, tuple[int, float]] = {KEY: (2, 30.0)}
        self.models = {"color-reach", "slow"}
        self.sessions: dict[str, int] = {}
        self.frames: list[FrameMessage] = []
        self.close_codes: list[int | None] = []
        self.garbage_next = False
        self.lock = threading.Lock()
        self.port = 0
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._open: set[ServerConnection] = set()

    def start(self, port: int = 0) -> SpecServer:
        self._server = serve(self._handle, "127.0.0.1", port)
        self.port = self._server.socket.getsockname()[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self.drop_all(L.CLOSE_GOING_AWAY)
        assert self._thread is not None
        self._thread.join(5)

    def drop_all(self, code: int = 1011) -> None:
        with self.lock:
            conns = list(self._open)
        for c in conns:
            c.close(code, "dropped")

    def _refuse(self, ws: ServerConnection, message: str, code: int) -> None:
        ws.send(json.dumps({"type": "error", "message": message}))
        ws.close(code, message[:100])

    def _handle(self, ws: ServerConnection) -> None:
        with self.lock:
            self._open.add(ws)
        key = None
        try:
            key = self._session(ws)
        finally:
            with self.lock:
                self._open.discard(ws)
                if key is not None:
                    self.sessions[key] -= 1

    def _session(self, ws: ServerConnection) -> str | None:
        try:
            auth = parse_client_message(ws.recv(timeout=5))
        except (ProtocolError, TimeoutError, websockets.ConnectionClosed):
            return None
        with self.lock:
            tier = self.keys.get(getattr(auth, "api_key", ""))
            if tier is None:
                self._refuse(ws, "invalid API key", L.CLOSE_BAD_KEY)
                return None
            if auth.model not in self.models:  # type: ignore[union-attr]
                self._refuse(ws, f"unknown model {auth.model!r}", L.CLOSE_UNKNOWN_MODEL)  # type: ignore[union-attr]
                return None
            if auth.target_fps > tier[1]:  # type: ignore[union-attr]
                self._refuse(ws, "target_fps above the tier's limit", L.CLOSE_FPS_TOO_HIGH)
                return None
            if self.sessions.get(auth.api_key, 0) >= tier[0]:  # type: ignore[union-attr]
                self._refuse(ws, "too many sessions", L.CLOSE_TOO_MANY_SESSIONS)
                return None
            self.sessions[auth.api_key] = self.sessions.get(auth.api_key, 0) + 1  # type: ignore[union-attr]
        key: str = auth.api_key  # type: ignore[union-attr]
        ws.send(json.dumps({"type": "connected", "session_id": "s-1", "status": "ready",
                            "config": {"model": auth.model, "target_fps": auth.target_fps,  # type: ignore[union-attr]
                                       "smoothing": True, "safety": True}}))
        frame_id = 0
        while True:
            try:
                raw = ws.recv(timeout=10)
            except (TimeoutError, websockets.ConnectionClosed):
                break
            try:
                msg = parse_client_message(raw)
            except ProtocolError as exc:
                ws.send(json.dumps({"type": "error", "message": str(exc)}))
                continue
            if isinstance(msg, FrameMessage):
                self.frames.append(msg)
                if self.garbage_next:
                    self.garbage_next = False
                    ws.send("{not json")
                    ws.send(json.dumps({"type": "action", "frame_id": "x"}))
                if msg.instruction == "please fail":
                    ws.send(json.dumps({"type": "error", "message": "model failed on this frame"}))
                else:
                    a = [frame_id / 1000.0] * 6 + [1.0]
                    ws.send(json.dumps({"type": "action", "frame_id": frame_id, "timestamp": time.time(), "action": a,
                                        "safety_score": 0.9, "latency_ms": 3.5, "smoothed": True}))
                frame_id += 1
            elif msg.__class__.__name__ == "StatsRequest":
                ws.send(
                    json.dumps(
                        {
                            "type": "stats",
                            "session_id": "s-1",
                            "runtime_seconds": 1.0,
                            "total_frames": frame_id,
                            "dropped_frames": 0,
                            "drop_rate_percent": 0.0,
                            "target_fps": 10.0,
                            "actual_fps": 9.5,
                            "avg_latency_ms": 3.5,
                            "frame_queue_size": 0,
                            "action_queue_size": 0,
                        }
                    )
                )
            elif msg.__class__.__name__ == "CloseRequest":
                ws.close(1000, "bye")
                break
        with self.lock:
            self.close_codes.append(ws.close_code)
        return key


@pytest.fixture
def server() -> Iterator[SpecServer]:
    s = SpecServer().start()
    yield s
    s.stop()


def _client(port: int, key: str = KEY, **kw: Any) -> VLAStreamingClient:
    kw.setdefault("backoff", Backoff(0.01, 0.05))
    return VLAStreamingClient(f"ws://127.0.0.1:{port}/v1/stream", key, **kw)


async def _eventually(pred: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


def test_connect_stream_actions_and_stats(server: SpecServer) -> None:
    async def main() -> None:
        async with _client(server.port) as c:
            connected = await c.connect("color-reach", target_fps=10, smoothing_alpha=0.4)
            assert connected.model == "color-reach" and connected.session_id == "s-1" and c.state == "connected"
            buf = io.BytesIO()
            Image.fromarray(IMG).save(buf, format="JPEG")
            await c.send_frame(IMG, "pick up the red cube", {"pose": [0.5, 0, 0.3, 3.14, 0, 0], "velocity": [0.0] * 6})
            await c.send_frame(buf.getvalue(), "pick up the red cube")
            a0 = await c.receive_action(timeout=2)
            a1 = await c.receive_action(timeout=2)
            assert (a0.frame_id, a1.frame_id) == (0, 1)
            assert a1.action.shape == (7,) and a1.action[0] == pytest.approx(0.001) and a1.action[6] == 1.0
            assert a0.safety_score == 0.9 and a0.smoothed and a0.rtt_ms is not None and a0.rtt_ms >= 0
            stats = await c.get_stats(timeout=2)
            assert stats.total_frames == 2 and stats.actual_fps == 9.5
            cs = c.client_stats()
            assert cs.frames_sent == 2 and cs.actions_received == 2 and cs.rtt_ms_p50 is not None
        assert c.state == "closed"

    asyncio.run(main())
    f = server.frames[0]
    assert (f.width, f.height) == (64, 48) and f.robot_state is not None and f.robot_state.pose[0] == 0.5
    deadline = time.monotonic() + 5.0  # the server's handler records the close after the client returns
    while not server.close_codes and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.close_codes == [1000]


@pytest.mark.parametrize(
    "key, model, fps, error, code",
    [
        ("wrong", "color-reach", 10, AuthError, L.CLOSE_BAD_KEY),
        (KEY, "nope", 10, ModelNotFound, L.CLOSE_UNKNOWN_MODEL),
        (KEY, "color-reach", 60, RateLimitError, L.CLOSE_FPS_TOO_HIGH),
    ],
)
def test_refusals_raise_typed_errors(
    server: SpecServer, key: str, model: str, fps: float, error: type, code: int
) -> None:
    async def main() -> None:
        c = _client(server.port, key)
        with pytest.raises(SessionRejected) as err:
            await c.connect(model, target_fps=fps)
        assert isinstance(err.value, error) and err.value.close_code == code and c.state == "closed"
        with pytest.raises(NotConnected):
            await c.send_frame(IMG, "x")

    asyncio.run(main())


def test_too_many_sessions(server: SpecServer) -> None:
    async def main() -> None:
        a, b, c = (_client(server.port) for _ in range(3))
        await a.connect("color-reach")
        await b.connect("color-reach")
        with pytest.raises(RateLimitError) as err:
            await c.connect("color-reach")
        assert err.value.close_code == L.CLOSE_TOO_MANY_SESSIONS
        await a.close()
        await _eventually(lambda: server.sessions[KEY] == 1)
        await c.connect("color-reach")  # a freed its slot
        await b.close()
        await c.close()

    asyncio.run(main())


def test_bad_input_is_refused_before_sending(server: SpecServer) -> None:
    async def main() -> None:
        async with _client(server.port) as c:
            await c.connect("color-reach")
            with pytest.raises(ValueError, match="uint8"):
                await c.send_frame(np.zeros((4, 4, 3), np.float32), "x")
            with pytest.raises(ValueError, match="JPEG"):
                await c.send_frame(b"\x89PNG....", "x")
            with pytest.raises(ValueError, match=r"pose\[1\]"):
                await c.send_frame(IMG, "x", {"pose": [0, float("nan"), 0, 0, 0, 0]})
            with pytest.raises(ValueError, match="pose"):
                await c.send_frame(IMG, "x", {"pose": [0, 0, 0]})
            assert c.client_stats().frames_sent == 0

    asyncio.run(main())
    assert server.frames == []


def test_server_error_is_raised_in_order_and_the_session_goes_on(server: SpecServer) -> None:
    async def main() -> None:
        async with _client(server.port) as c:
            await c.connect("color-reach")
            await c.send_frame(IMG, "please fail")
            await c.send_frame(IMG, "ok")
            with pytest.raises(ServerError, match="model failed"):
                await c.receive_action(timeout=2)
            assert (await c.receive_action(timeout=2)).frame_id == 1
            assert c.client_stats().server_errors == 1

    asyncio.run(main())


def test_garbage_from_the_server_is_counted_not_fatal(server: SpecServer) -> None:
    async def main() -> None:
        async with _client(server.port) as c:
            await c.connect("color-reach")
            server.garbage_next = True
            await c.send_frame(IMG, "x")
            assert (await c.receive_action(timeout=2)).frame_id == 0
            assert c.client_stats().protocol_violations == 2

    asyncio.run(main())


def test_receive_times_out(server: SpecServer) -> None:
    async def main() -> None:
        async with _client(server.port) as c:
            await c.connect("color-reach")
            t = time.monotonic()
            with pytest.raises(Timeout):
                await c.receive_action(timeout=0.2)
            assert 0.15 < time.monotonic() - t < 1.5

    asyncio.run(main())


def test_queue_overflow_drops_oldest_and_latest_takes_the_newest(server: SpecServer) -> None:
    async def main() -> None:
        async with _client(server.port, action_queue_size=3) as c:
            await c.connect("color-reach")
            for _ in range(6):
                await c.send_frame(IMG, "x")
            await _eventually(lambda: c.client_stats().actions_received == 6)
            assert c.client_stats().actions_dropped == 3
            assert (await c.receive_action(timeout=1)).frame_id == 3
            assert (await c.receive_action(timeout=1, latest=True)).frame_id == 5
            assert c.client_stats().actions_dropped == 4

    asyncio.run(main())


def test_reconnects_after_a_drop_and_reports_the_outage(server: SpecServer) -> None:
    async def main() -> None:
        async with _client(server.port, backoff=Backoff(0.3, 0.3)) as c:
            await c.connect("color-reach")
            assert c.session_number == 1
            assert await c.send_frame(IMG, "x") == 0 and await c.send_frame(IMG, "x") == 1
            before = [await c.receive_action(timeout=2) for _ in range(2)]
            assert [(a.session_number, a.frame_id) for a in before] == [(1, 0), (1, 1)]
            await asyncio.to_thread(server.drop_all)
            await _eventually(lambda: c.state != "connected")
            with pytest.raises(ConnectionLost):
                await c.send_frame(IMG, "x")
            with pytest.raises(ConnectionLost):
                await c.receive_action(timeout=1)
            await _eventually(lambda: c.state == "connected")
            assert await c.send_frame(IMG, "x") == 0  # a new server session: ids restart ...
            a = await c.receive_action(timeout=2)
            assert (a.session_number, a.frame_id) == (c.session_number, 0) == (2, 0)  # ... in session 2
            assert c.client_stats().reconnects == 1

    asyncio.run(main())


def test_service_restart_on_the_same_port(server: SpecServer) -> None:
    async def main() -> None:
        async with _client(server.port) as c:
            await c.connect("color-reach")
            port = server.port
            await asyncio.to_thread(server.stop)
            await _eventually(lambda: c.state == "reconnecting")
            await asyncio.sleep(0.2)  # a few failed attempts while it is down
            assert c.state == "reconnecting"
            await asyncio.to_thread(server.start, port)
            await _eventually(lambda: c.state == "connected")
            await c.send_frame(IMG, "x")
            assert (await c.receive_action(timeout=2)).frame_id == 0

    asyncio.run(main())


def test_key_revoked_while_away_is_final(server: SpecServer) -> None:
    async def main() -> None:
        c = _client(server.port)
        await c.connect("color-reach")
        del server.keys[KEY]
        await asyncio.to_thread(server.drop_all)
        await _eventually(lambda: c.state == "closed")
        with pytest.raises(AuthError):
            await c.send_frame(IMG, "x")
        with pytest.raises(AuthError):
            await c.receive_action(timeout=0.1)
        await c.close()

    asyncio.run(main())


def test_no_reconnect_when_disabled(server: SpecServer) -> None:
    async def main() -> None:
        c = _client(server.port, reconnect=False)
        await c.connect("color-reach")
        await asyncio.to_thread(server.drop_all)
        await _eventually(lambda: c.state == "closed")
        with pytest.raises(ConnectionLost):
            await c.receive_action(timeout=0.1)

    asyncio.run(main())


def test_service_not_up_yet() -> None:
    late = SpecServer()

    async def main() -> None:
        from tests.fakes.net import free_port

        port = free_port()
        with pytest.raises(ConnectionLost):
            await _client(port).connect("color-reach")
        threading.Timer(0.3, late.start, args=(port,)).start()
        c = _client(port)
        await c.connect("color-reach", wait_s=5.0)
        assert c.state == "connected"
        await c.close()

    try:
        asyncio.run(main())
    finally:
        if late._server is not None:
            late.stop()


def test_calls_before_connect_and_after_close() -> None:
    async def main() -> None:
        c = _client(1)
        with pytest.raises(NotConnected):
            await c.receive_action(timeout=0.1)
        with pytest.raises(NotConnected):
            await c.get_stats()
        await c.close()
        await c.close()

    asyncio.run(main())


def test_sync_wrapper_reports_the_clients_own_timeout(server: SpecServer) -> None:
    """The async client's `Timeout` (a TimeoutError too) reaches the caller with its own message,
    at its own timeout, not re-labelled as an event loop that did not answer."""
    with SyncVLAStreamingClient(f"ws://127.0.0.1:{server.port}/v1/stream", KEY) as c:
        c.connect("color-reach", target_fps=20)
        with pytest.raises(Timeout, match=r"^no action within 0.2 s$"):
            c.receive_action(timeout=0.2)
        c.send_frame(IMG, "x")
        assert c.receive_action(timeout=2).frame_id == 0  # the session goes on


def test_sync_wrapper_from_several_threads(server: SpecServer) -> None:
    with SyncVLAStreamingClient(f"ws://127.0.0.1:{server.port}/v1/stream", KEY, backoff=Backoff(0.01, 0.05)) as c:
        assert c.connect("color-reach", target_fps=20).model == "color-reach"
        errors: list[BaseException] = []

        def sender() -> None:
            try:
                for _ in range(10):
                    c.send_frame(IMG, "pick up the red cube", {"pose": [0.5, 0, 0.3, 3.14, 0, 0]})
            except BaseException as exc:  # noqa: BLE001 - reported by the assert below
                errors.append(exc)

        threads = [threading.Thread(target=sender) for _ in range(3)]
        for t in threads:
            t.start()
        got = [c.receive_action(timeout=3).frame_id for _ in range(30)]
        for t in threads:
            t.join(5)
        assert not errors and sorted(got) == list(range(30)) and got == sorted(got)
        assert c.get_stats(timeout=2).total_frames == 30
        assert c.client_stats().frames_sent == 30
        with pytest.raises(Timeout):
            c.receive_action(timeout=0.1)
    assert c.state == "closed" and not c._thread.is_alive()
    with pytest.raises(NotConnected):
        c.receive_action(timeout=0.1)
