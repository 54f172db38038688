"""`VLAStreamingClient`: the asyncio client of ``ws://HOST:8000/v1/stream``.

Life cycle: `connect` opens the socket, sends ``auth`` and waits for ``connected`` (a refusal
raises the typed error its close code stands for, see `vla_client.errors`); a background task
then reads the server's messages: actions (and ``error`` replies, in order) into a bounded queue
that `receive_action` takes from, stats replies to `get_stats`. When the link drops, that task
reconnects with exponential backoff and re-authenticates with the same settings (a new server
session: frame ids restart at 0); meanwhile `send_frame` and `receive_action` raise
`ConnectionLost` at once, so a caller's loop never stalls. A refusal while reconnecting (the key
was revoked, say) is final and raised from then on; "too many sessions" is retried, since the
service may still be counting the session that just dropped.

Every wait has a timeout. Not thread-safe: use `SyncVLAStreamingClient` from other threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Self

import numpy as np
import websockets
from websockets.asyncio.client import ClientConnection

from robot_formats.stats import percentile
from robot_formats.stream import limits as L
from robot_formats.stream.messages import (
    ActionMessage,
    ConnectedMessage,
    ErrorMessage,
    StatsMessage,
)
from vla_client.backoff import Backoff, open_with_retry
from vla_client.errors import (
    AuthError,
    ConnectionLost,
    NotConnected,
    ProtocolViolation,
    RateLimitError,
    ServerError,
    SessionRejected,
    Timeout,
    VLAClientError,
    rejection_for,
)
from vla_client.frames import (
    CLOSE_TEXT,
    STATS_TEXT,
    ImageLike,
    RobotStateLike,
    SessionConfig,
    auth_text,
    frame_text,
)
from vla_client.replies import parse_server_message
from vla_client.types import ClientState, ClientStats, ReceivedAction

log = logging.getLogger(__name__)

DEFAULT_URL = f"ws://{L.DEFAULT_HOST}:{L.DEFAULT_PORT}{L.STREAM_PATH}"
RTT_WINDOW = 256  # client round-trip samples kept for p50/p95
SENT_TIMES_KEPT = 1024  # frame send times remembered to measure round trips
CLOSE_WAIT_S = 1.0  # after an `error` reply to auth, how long to wait for the close that may follow


def counts_to_stats(
    counts: dict[str, int], state: ClientState, rtts: deque[float], last_error: str, extra: dict[str, Any] | None = None
) -> ClientStats:
    """A `ClientStats` from a client's counter dict and round-trip samples (ms)."""
    return ClientStats(
        state=state,
        frames_sent=counts["frames_sent"],
        frames_dropped=counts.get("frames_dropped", 0),
        actions_received=counts["actions_received"],
        actions_dropped=counts["actions_dropped"],
        server_errors=counts["server_errors"],
        protocol_violations=counts["protocol_violations"],
        reconnects=counts["reconnects"],
        rtt_ms_p50=percentile(rtts, 50),
        rtt_ms_p95=percentile(rtts, 95),
        last_error=last_error,
        extra=extra or {},
    )


class VLAStreamingClient:
    """Streams frames to `/v1/stream` and receives actions (asyncio).

    Args:
        url: ``ws://HOST:PORT/v1/stream`` (``wss://`` works too).
        api_key: the key printed by ``vla-server keys create``.
        connect_timeout_s: opening the socket plus the ``auth`` → ``connected`` exchange, s.
        send_timeout_s: one frame's send (flow control may hold it), s.
        reconnect: reconnect in the background when the link drops.
        backoff: reconnect delays (default 0.25 s doubling to 5 s, jittered).
        action_queue_size: actions kept unread; beyond it the oldest is dropped (counted).
        jpeg_quality: for frames given as arrays.
        max_message_bytes: largest server message accepted.
        clock: monotonic clock, s (injected in tests).
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        api_key: str = "",
        *,
        connect_timeout_s: float = 5.0,
        send_timeout_s: float = 2.0,
        reconnect: bool = True,
        backoff: Backoff | None = None,
        action_queue_size: int = 32,
        jpeg_quality: int = 85,
        max_message_bytes: int = 1 << 20,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not url.startswith(("ws://", "wss://")):
            raise ValueError(f"url: expected ws://HOST:PORT/v1/stream, got {url!r}")
        if action_queue_size < 1:
            raise ValueError(f"action_queue_size: expected >= 1, got {action_queue_size}")
        self.url = url
        self._api_key = api_key
        self.connect_timeout_s = connect_timeout_s
        self.send_timeout_s = send_timeout_s
        self.reconnect = reconnect
        self.backoff = backoff or Backoff()
        self.jpeg_quality = jpeg_quality
        self.max_message_bytes = max_message_bytes
        self._clock = clock
        self._state: ClientState = "idle"
        self._cfg: SessionConfig | None = None
        self._ws: ClientConnection | None = None
        self._session: ConnectedMessage | None = None
        self._inbox: deque[ReceivedAction | ServerError] = deque()
        self._inbox_max = action_queue_size
        self._stats_waiters: deque[asyncio.Future[StatsMessage]] = deque()
        self._wake: asyncio.Event | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._fatal: VLAClientError | None = None
        self._sent_at: dict[int, float] = {}
        self._frames_this_session = 0
        self._session_number = 0
        self._rtts: deque[float] = deque(maxlen=RTT_WINDOW)
        self._counts = {"frames_sent": 0, "actions_received": 0, "actions_dropped": 0, "server_errors": 0,
                        "protocol_violations": 0, "reconnects": 0}
        self._last_error = ""

    # ---- public API -------------------------------------------------------------------------

    @property
    def state(self) -> ClientState:
        """idle → connecting → connected ⇄ reconnecting → closed."""
        return self._state

    @property
    def session(self) -> ConnectedMessage | None:
        """The server's ``connected`` reply of the current session."""
        return self._session

    @property
    def session_number(self) -> int:
        """Sessions this client has opened (0 before the first; +1 at each reconnect)."""
        return self._session_number

    async def connect(
        self,
        model: str,
        robot_type: str = "franka_panda",
        target_fps: float = 10.0,
        enable_smoothing: bool = True,
        enable_safety: bool = True,
        smoothing_alpha: float | None = None,
        *,
        wait_s: float = 0.0,
    ) -> ConnectedMessage:
        """Opens a session.

        Args:
            model, robot_type, target_fps, enable_smoothing, enable_safety, smoothing_alpha: the
                ``auth`` fields (see the README's protocol section).
            wait_s: keep retrying a service that is not up yet (refused connection, timeout)
                for this long, with backoff; 0 = one attempt.

        Raises:
            AuthError, RateLimitError, ModelNotFound, UnsupportedRobot: the service refused.
            ServerError: the service answered ``auth`` with an error (a bad field).
            ConnectionLost: the service could not be reached (within `wait_s`).
            Timeout: no ``connected`` within `connect_timeout_s`.
        """
        if self._state not in ("idle", "closed"):
            raise VLAClientError(f"connect: the client is already {self._state}; close it first")
        self._cfg = SessionConfig(
            model, robot_type, float(target_fps), enable_smoothing, enable_safety, smoothing_alpha
        )
        self._wake = asyncio.Event()
        self._fatal = None
        self._inbox.clear()
        self._state = "connecting"
        try:
            ws, connected = await open_with_retry(self._open_session, self.backoff, self._clock, wait_s)
        except VLAClientError:
            self._state = "closed"
            raise
        self._attach(ws, connected)
        self._supervisor = asyncio.create_task(self._supervise(), name="vla-client-supervisor")
        return connected

    def prepare_frame(self, image: ImageLike, instruction: str, robot_state: RobotStateLike | None = None) -> str:
        """Encodes a frame message (JPEG encode, state check); pure, callable from any thread.

        Raises:
            ValueError: a bad image, instruction or robot state (nothing is sent).
        """
        return frame_text(image, instruction, robot_state, self.jpeg_quality)

    async def send_frame(self, image: ImageLike, instruction: str, robot_state: RobotStateLike | None = None) -> int:
        """Sends one frame. `image`: (H, W, 3) uint8 RGB array or JPEG bytes; `robot_state`:
        ``{"pose": [x, y, z, roll, pitch, yaw], "velocity": [6]}`` (m, rad, base frame) or None.

        Returns:
            The frame id the server assigns it (its ``action`` carries it): the server numbers a
            session's valid frames from 0 and this client sends only frames the protocol's own
            parser accepts, so the id is the count of frames sent before it in this session.

        Raises:
            ValueError: bad input (nothing sent). ConnectionLost: the link is down.
            NotConnected, SessionRejected: not connected / the session was refused for good.
        """
        self._check_usable()
        text = await asyncio.to_thread(self.prepare_frame, image, instruction, robot_state)
        return await self.send_prepared(text)

    async def send_prepared(self, prepared: str) -> int:
        """Sends a frame made by `prepare_frame`; returns its frame id (see `send_frame`)."""
        ws = self._check_usable()
        frame_id = self._frames_this_session
        # The send time is taken and kept before the send: awaiting it may yield to the receiver
        # until after this frame's action came (the round trip then read ~0 or was lost).
        self._sent_at[frame_id] = self._clock()
        try:
            async with asyncio.timeout(self.send_timeout_s):
                await ws.send(prepared)
        except TimeoutError as exc:
            self._sent_at.pop(frame_id, None)
            raise Timeout(f"sending a frame took longer than {self.send_timeout_s} s") from exc
        except websockets.ConnectionClosed as exc:
            self._sent_at.pop(frame_id, None)
            raise ConnectionLost(f"connection to {self.url} lost while sending: {exc}") from exc
        if len(self._sent_at) > SENT_TIMES_KEPT:
            del self._sent_at[next(iter(self._sent_at))]
        self._frames_this_session += 1
        self._counts["frames_sent"] += 1
        return frame_id

    async def receive_action(self, timeout: float = 1.0, latest: bool = False) -> ReceivedAction:
        """The next action (oldest first), or with `latest` the newest one, dropping older ones.

        Raises:
            Timeout: none within `timeout` s. ServerError: the next queued item is an ``error``
            reply (the session goes on). ConnectionLost: the queue is empty and the link is down.
            NotConnected, SessionRejected: not connected / refused for good.
        """
        deadline = self._clock() + timeout
        while True:
            item = self._take(latest)
            if item is not None:
                if isinstance(item, ServerError):
                    raise item
                return item
            self._check_usable()
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise Timeout(f"no action within {timeout} s")
            assert self._wake is not None
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._wake.wait()

    async def get_stats(self, timeout: float = 1.0) -> StatsMessage:
        """Asks the service for this session's statistics.

        Raises:
            Timeout, ConnectionLost, NotConnected.
        """
        ws = self._check_usable()
        fut: asyncio.Future[StatsMessage] = asyncio.get_running_loop().create_future()
        self._stats_waiters.append(fut)
        try:
            async with asyncio.timeout(timeout):
                await ws.send(STATS_TEXT)
                return await fut
        except TimeoutError as exc:
            raise Timeout(f"no stats reply within {timeout} s") from exc
        except websockets.ConnectionClosed as exc:
            raise ConnectionLost(f"connection to {self.url} lost: {exc}") from exc
        finally:
            with contextlib.suppress(ValueError):
                self._stats_waiters.remove(fut)

    def client_stats(self) -> ClientStats:
        """Client-side counters and round-trip percentiles."""
        return counts_to_stats(self._counts, self._state, self._rtts, self._last_error)

    async def close(self, timeout: float = 2.0) -> None:
        """Sends ``close``, closes the socket (code 1000) and stops reconnecting. Idempotent."""
        if self._state == "closed" and self._supervisor is None:
            return
        self._state = "closed"
        if self._fatal is None:
            self._fatal = NotConnected("the client was closed")
        ws, self._ws = self._ws, None
        if ws is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(timeout):
                    await ws.send(CLOSE_TEXT)
                    await ws.close(1000, "client closed")
        sup, self._supervisor = self._supervisor, None
        if sup is not None and sup is not asyncio.current_task():
            sup.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(sup, timeout)
        self._fail_stats_waiters(NotConnected("the client was closed"))
        self._poke()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- internals ---------------------------------------------------------------------------

    def _check_usable(self) -> ClientConnection:
        if self._fatal is not None and not isinstance(self._fatal, ConnectionLost):
            raise self._fatal
        if self._state == "idle" or self._cfg is None:
            raise NotConnected("call connect() first")
        if self._state == "closed":
            raise self._fatal or NotConnected("the client was closed")
        if self._ws is None or self._state != "connected":
            raise ConnectionLost(f"not connected to {self.url} ({self._state})")
        return self._ws

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _take(self, latest: bool) -> ReceivedAction | ServerError | None:
        if not self._inbox:
            return None
        if not latest:
            return self._inbox.popleft()
        newest: ReceivedAction | None = None
        while self._inbox:
            item = self._inbox.popleft()
            if isinstance(item, ServerError):
                if newest is None:
                    return item
                self._inbox.appendleft(item)  # keep the error for the next call, in order
                break
            if newest is not None:
                self._counts["actions_dropped"] += 1
            newest = item
        return newest

    def _push(self, item: ReceivedAction | ServerError) -> None:
        if len(self._inbox) >= self._inbox_max:
            old = self._inbox.popleft()
            if isinstance(old, ReceivedAction):
                self._counts["actions_dropped"] += 1
        self._inbox.append(item)
        self._poke()

    def _fail_stats_waiters(self, exc: VLAClientError) -> None:
        while self._stats_waiters:
            fut = self._stats_waiters.popleft()
            if not fut.done():
                fut.set_exception(exc)

    async def _open_session(self) -> tuple[ClientConnection, ConnectedMessage]:
        """Connects and authenticates once; raises a typed error on failure."""
        assert self._cfg is not None
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                ws = await websockets.connect(
                    self.url,
                    open_timeout=None,
                    max_size=self.max_message_bytes,
                    compression=None,
                    ping_interval=10.0,
                    ping_timeout=10.0,
                    close_timeout=1.0,
                )
        except TimeoutError as exc:
            raise Timeout(f"connecting to {self.url} took longer than {self.connect_timeout_s} s") from exc
        except websockets.InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                raise AuthError(f"{self.url} refused the connection: HTTP {status}", status) from exc
            raise ConnectionLost(f"{self.url} refused the connection: HTTP {status}") from exc
        except (OSError, websockets.InvalidHandshake, websockets.InvalidURI) as exc:
            raise ConnectionLost(f"cannot connect to {self.url}: {exc}") from exc
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                await ws.send(auth_text(self._api_key, self._cfg))
                reply = parse_server_message(await ws.recv())
                if isinstance(reply, ConnectedMessage):
                    return ws, reply
                if isinstance(reply, ErrorMessage):
                    # a refusal is an error then a close whose code says why; a bad field only an error
                    with contextlib.suppress(websockets.ConnectionClosed, TimeoutError):
                        await asyncio.wait_for(ws.recv(), CLOSE_WAIT_S)
                    rcvd = ws.protocol.close_rcvd
                    code = rcvd.code if rcvd is not None else None
                    await _abort(ws)
                    raise rejection_for(code, reply.message) or ServerError(reply.message)
                raise ProtocolViolation(f"expected 'connected' after auth, got {type(reply).__name__}")
        except TimeoutError as exc:
            await _abort(ws)
            raise Timeout(f"no 'connected' reply from {self.url} within {self.connect_timeout_s} s") from exc
        except websockets.ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else None
            reason = exc.rcvd.reason if exc.rcvd is not None else str(exc)
            raise rejection_for(code, reason) or ConnectionLost(f"{self.url} closed during auth: {exc}") from exc
        except VLAClientError:
            await _abort(ws)
            raise

    def _attach(self, ws: ClientConnection, connected: ConnectedMessage) -> None:
        self._ws = ws
        self._session = connected
        self._sent_at.clear()
        self._frames_this_session = 0
        self._session_number += 1
        self._state = "connected"
        self._poke()
        log.info("vla stream session %s model=%s", connected.session_id, connected.model)

    async def _supervise(self) -> None:
        """Reads the current connection; on loss, reconnects with backoff (unless told not to)."""
        try:
            while self._state != "closed":
                ws = self._ws
                assert ws is not None
                code, reason = await self._read(ws)
                if self._state == "closed":
                    return
                self._ws = None
                self._last_error = f"connection lost (close {code}: {reason})"
                self._fail_stats_waiters(ConnectionLost(self._last_error))
                rejected = rejection_for(code, reason or f"closed with code {code}")
                if rejected is not None and not (
                    isinstance(rejected, RateLimitError) and code == L.CLOSE_TOO_MANY_SESSIONS
                ):
                    self._give_up(rejected)
                    return
                if not self.reconnect:
                    self._give_up(ConnectionLost(self._last_error))
                    return
                self._state = "reconnecting"
                self._poke()
                log.warning("vla stream: %s; reconnecting", self._last_error)
                if not await self._reconnect():
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("vla stream supervisor failed")
            self._give_up(VLAClientError(f"client failure: {type(exc).__name__}: {exc}"))

    async def _reconnect(self) -> bool:
        while self._state == "reconnecting":
            await asyncio.sleep(self.backoff.next_delay())
            if self._state != "reconnecting":
                return False
            try:
                ws, connected = await self._open_session()
            except (ConnectionLost, Timeout, ServerError, ProtocolViolation) as exc:
                self._last_error = str(exc)
                continue
            except RateLimitError as exc:
                if exc.close_code == L.CLOSE_TOO_MANY_SESSIONS:
                    self._last_error = str(exc)
                    continue
                self._give_up(exc)
                return False
            except SessionRejected as exc:
                self._give_up(exc)
                return False
            if self._state != "reconnecting":
                await _abort(ws)
                return False
            self.backoff.reset()
            self._counts["reconnects"] += 1
            self._attach(ws, connected)
            return True
        return False

    def _give_up(self, exc: VLAClientError) -> None:
        self._fatal = exc
        self._state = "closed"
        self._last_error = str(exc)
        self._fail_stats_waiters(exc)
        self._poke()

    async def _read(self, ws: ClientConnection) -> tuple[int | None, str]:
        """Dispatches server messages until the connection closes; returns (close code, reason)."""
        try:
            async for raw in ws:
                now = self._clock()
                try:
                    msg = parse_server_message(raw)
                except ProtocolViolation as exc:
                    self._counts["protocol_violations"] += 1
                    self._last_error = str(exc)
                    log.warning("vla stream: %s", exc)
                    continue
                if isinstance(msg, ActionMessage):
                    self._on_action(msg, now)
                elif isinstance(msg, ErrorMessage):
                    self._counts["server_errors"] += 1
                    self._last_error = msg.message
                    self._push(ServerError(msg.message))
                elif isinstance(msg, StatsMessage):
                    while self._stats_waiters:
                        fut = self._stats_waiters.popleft()
                        if not fut.done():
                            fut.set_result(msg)
                            break
        except websockets.ConnectionClosed:
            pass
        rcvd = ws.protocol.close_rcvd
        return (rcvd.code, rcvd.reason) if rcvd is not None else (None, "no close frame")

    def _on_action(self, msg: ActionMessage, now: float) -> None:
        sent = self._sent_at.pop(msg.frame_id, None)
        rtt = (now - sent) * 1000.0 if sent is not None else None
        if rtt is not None:
            self._rtts.append(rtt)
        self._counts["actions_received"] += 1
        self._push(
            ReceivedAction(
                frame_id=msg.frame_id,
                timestamp=msg.timestamp,
                action=np.asarray(msg.action, dtype=np.float64),
                safety_score=msg.safety_score,
                latency_ms=msg.latency_ms,
                smoothed=msg.smoothed,
                received_at=now,
                rtt_ms=rtt,
                session_number=self._session_number,
            )
        )


async def _abort(ws: ClientConnection) -> None:
    with contextlib.suppress(Exception):
        async with asyncio.timeout(1.0):
            await ws.close()
