"""`StreamSession`: one `/v1/stream` connection, independent of the web framework.

Three tasks per session: the *reader* (this object's `run`: parse, authenticate, gate and queue
frames, answer stats), the *inference* task (take the newest queued frame, hand its JPEG to the
registry — the model's worker decodes it —, smooth, score, queue the action) and the *writer* (send queued server
messages in order, then the close frame). A bad message only produces an `error`; a failure of
the model only fails that frame. The session ends on `close`, a disconnect, an auth failure (with
a close code from `vla_server.constants`), or the server's shutdown (1001).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from robot_formats.stream.errors import ProtocolError
from robot_formats.stream.limits import (
    CLOSE_AUTH_TIMEOUT,
    CLOSE_BAD_KEY,
    CLOSE_FPS_TOO_HIGH,
    CLOSE_NORMAL,
    CLOSE_TOO_MANY_SESSIONS,
    CLOSE_UNKNOWN_MODEL,
    CLOSE_UNSUPPORTED_ROBOT,
    ROBOT_TYPES,
)
from robot_formats.stream.messages import (
    ActionMessage,
    AuthMessage,
    CloseRequest,
    ConnectedMessage,
    ErrorMessage,
    FrameMessage,
    ServerMessage,
    StatsMessage,
    StatsRequest,
    encode_server_message,
)
from robot_formats.stream.parse import ParseLimits, parse_client_message
from vla_server.auth.store import ApiKey, KeyStore
from vla_server.registry.errors import (
    InvalidInput,
    ModelCrashed,
    RegistryClosed,
    RegistryError,
)
from vla_server.registry.types import InferenceService
from vla_server.stream.config import StreamConfig
from vla_server.stream.ema import EmaSmoother
from vla_server.stream.frame_queue import FrameQueue
from vla_server.stream.rate import RateGate
from vla_server.stream.safety import assess, sanitize_action
from vla_server.stream.stats import SessionStats
from vla_server.workers.wire import EncodedObservation

log = logging.getLogger("vla_server.stream")


class Transport(Protocol):
    """The connection under a session (a Starlette websocket, or an in-memory pipe in benchmarks)."""

    async def receive(self) -> str | bytes | None:
        """The next message, or None when the client has gone."""

    async def send_text(self, text: str) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


class SessionRegistry(Protocol):
    """What a session needs from the session manager (tier limits, listing)."""

    def try_register(self, session: StreamSession) -> str | None:
        """Registers the session; returns None, or why the key may not open another one."""

    def unregister(self, session: StreamSession) -> None: ...


@dataclass(frozen=True)
class _Pending:
    frame_id: int
    msg: FrameMessage
    arrival: float  # monotonic s
    arrival_wall: float  # unix s


class _Close:
    def __init__(self, code: int, reason: str) -> None:
        self.code, self.reason = code, reason


class StreamSession:
    """One client connection. Owned by one event loop; `run()` returns when it has ended."""

    def __init__(
        self,
        transport: Transport,
        *,
        registry: InferenceService,
        keystore: KeyStore,
        sessions: SessionRegistry,
        config: StreamConfig,
        client: str = "",
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.transport = transport
        self.registry = registry
        self.keystore = keystore
        self.sessions = sessions
        self.config = config
        self.client = client
        self._clock = clock
        self._wall = wall
        self._limits = ParseLimits(config.max_message_bytes, config.max_image_side)
        self.session_id = str(uuid.uuid4())
        self.key: ApiKey | None = None
        self.auth: AuthMessage | None = None
        self.connected_wall: float | None = None
        self.stats = SessionStats(started=clock())
        self._queue: FrameQueue[_Pending] = FrameQueue(config.queue_max_size)
        self._frame_ready = asyncio.Event()
        self._gate: RateGate | None = None
        self._smoother: EmaSmoother | None = None
        self._prev_sent: np.ndarray | None = None
        self._next_frame_id = 0
        self._outbox: deque[ServerMessage | _Close] = deque()
        self._outbox_ready = asyncio.Event()
        self._closing: _Close | None = None
        self._inference_task: asyncio.Task[None] | None = None
        self._writer_task: asyncio.Task[None] | None = None
        self._done = asyncio.Event()
        self._stop_reading = asyncio.Event()
        self._registered = False
        self._disconnected = False

    # ---- public ---------------------------------------------------------------------------------

    @property
    def model(self) -> str | None:
        return self.auth.model if self.auth else None

    @property
    def authenticated(self) -> bool:
        return self.auth is not None and self.key is not None

    async def run(self) -> None:
        """Serves the connection until it ends; never raises for client behaviour."""
        loop = asyncio.get_running_loop()
        self._writer_task = loop.create_task(self._writer(), name=f"stream-writer-{self.session_id[:8]}")
        deadline = self._clock() + self.config.auth_timeout_s
        try:
            while self._closing is None:
                timeout = None if self.authenticated else deadline - self._clock()
                if timeout is not None and timeout <= 0:
                    self.fail(f"no valid auth message within {self.config.auth_timeout_s:g} s", CLOSE_AUTH_TIMEOUT)
                    break
                receive = self._receive_or_close()
                try:
                    raw = await (receive if timeout is None else asyncio.wait_for(receive, timeout))
                except TimeoutError:
                    continue
                if raw is None:
                    break
                try:
                    await self.handle(raw, self._clock())
                except Exception as exc:  # a bug here must not end the session or reach others
                    log.exception("message handling failed", extra={"event": "session_bug", "session": self.session_id})
                    self.error(f"internal error while handling the message ({type(exc).__name__}); the session goes on")
        finally:
            await self._finish()

    async def handle(self, raw: str | bytes, arrival: float) -> None:
        """Processes one client message that arrived at `arrival` (monotonic s)."""
        try:
            msg = parse_client_message(raw, self._limits)
        except ProtocolError as exc:
            self.stats.bad_messages += 1
            self.error(str(exc))
            return
        if isinstance(msg, AuthMessage):
            self._on_auth(msg)
        elif not self.authenticated:
            self.stats.bad_messages += 1
            kind = {FrameMessage: "frame", StatsRequest: "stats", CloseRequest: "close"}[type(msg)]
            if isinstance(msg, CloseRequest):
                self.close(CLOSE_NORMAL, "client closed")
                return
            self.error(f"{kind} before auth: send {{\"type\":\"auth\", ...}} first")
        elif isinstance(msg, FrameMessage):
            self._on_frame(msg, arrival)
        elif isinstance(msg, StatsRequest):
            self._send(self.stats_message())
        else:
            self.close(CLOSE_NORMAL, "client closed")

    def error(self, message: str) -> None:
        """Queues an `error` message (the session stays open)."""
        self._send(ErrorMessage(message))

    def fail(self, message: str, code: int) -> None:
        """Queues an `error`, then closes with `code`."""
        self.error(message)
        self.close(code, message)

    def close(self, code: int, reason: str) -> None:
        """Ends the session: pending messages are sent, then the close frame."""
        if self._closing is not None:
            return
        self._closing = _Close(code, reason)
        self._outbox.append(self._closing)
        self._outbox_ready.set()
        self._frame_ready.set()
        self._stop_reading.set()

    async def wait_closed(self, timeout_s: float) -> bool:
        """Waits until `run` has finished; False on timeout."""
        try:
            await asyncio.wait_for(self._done.wait(), timeout_s)
            return True
        except TimeoutError:
            return False

    def stats_message(self) -> StatsMessage:
        now = self._clock()
        s = self.stats
        return StatsMessage(
            session_id=self.session_id,
            runtime_seconds=round(now - s.started, 3),
            total_frames=s.total_frames,
            dropped_frames=s.dropped,
            drop_rate_percent=round(s.drop_rate_percent(), 3),
            target_fps=self.auth.target_fps if self.auth else 0.0,
            actual_fps=round(s.actual_fps(now), 3),
            avg_latency_ms=round(s.avg_latency_ms(), 3),
            frame_queue_size=len(self._queue),
            action_queue_size=sum(isinstance(m, ActionMessage) for m in self._outbox),
        )

    def snapshot(self) -> dict[str, Any]:
        """What `GET /v1/sessions` shows for this session."""
        s, now = self.stats, self._clock()
        auth, key = self.auth, self.key
        p50, p95 = s.latency.percentile(50), s.latency.percentile(95)
        return {
            "session_id": self.session_id,
            "model": auth.model if auth else None,
            "key_name": key.name if key else None,
            "tier": key.tier.name if key else None,
            "client": self.client,
            "connected_at": self.connected_wall,
            "runtime_seconds": round(now - s.started, 3),
            "target_fps": auth.target_fps if auth else None,
            "actual_fps": round(s.actual_fps(now), 3),
            "total_frames": s.total_frames,
            "actions": s.actions,
            "dropped_frames": s.dropped,
            "dropped_rate": s.dropped_rate,
            "dropped_queue": s.dropped_queue,
            "dropped_stale": s.dropped_stale,
            "failed_frames": s.failed,
            "bad_frames": s.bad_frames,
            "bad_messages": s.bad_messages,
            "drop_rate_percent": round(s.drop_rate_percent(), 3),
            "avg_latency_ms": round(s.avg_latency_ms(), 3),
            "latency_p50_ms": None if p50 is None else round(p50, 3),
            "latency_p95_ms": None if p95 is None else round(p95, 3),
            "frame_queue_size": len(self._queue),
            "smoothing": self._smoother is not None,
            "smoothing_alpha": self._smoother.alpha if self._smoother else None,
            "safety": bool(auth.enable_safety) if auth else None,
            "last_safety_score": s.last_safety,
        }

    # ---- reader side ------------------------------------------------------------------------------

    async def _receive_or_close(self) -> str | bytes | None:
        """The next message, or None once the session is closing (server side) or the client left."""
        receive = asyncio.ensure_future(self.transport.receive())
        stop = asyncio.ensure_future(self._stop_reading.wait())
        try:
            done, _ = await asyncio.wait({receive, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if receive in done:
            return receive.result()
        receive.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await receive
        return None

    def _on_auth(self, msg: AuthMessage) -> None:
        if self.authenticated:
            self.error(f"already authenticated (session {self.session_id}); open a new connection for another session")
            return
        key = self.keystore.verify(msg.api_key)
        if key is None:
            log.warning("auth failed", extra={"event": "auth_failed", "client": self.client, "reason": "bad key"})
            self.fail("invalid or revoked API key", CLOSE_BAD_KEY)
            return
        if msg.robot_type not in ROBOT_TYPES:
            self.fail(
                f"unsupported robot_type {msg.robot_type!r}; supported: {list(ROBOT_TYPES)}", CLOSE_UNSUPPORTED_ROBOT
            )
            return
        if not self.registry.has_model(msg.model):
            self.fail(f"unknown model {msg.model!r}; see GET /v1/models", CLOSE_UNKNOWN_MODEL)
            return
        if msg.target_fps > key.tier.max_fps:
            self.fail(
                f"target_fps {msg.target_fps:g} exceeds the {key.tier.name} tier's maximum of {key.tier.max_fps:g} Hz",
                CLOSE_FPS_TOO_HIGH,
            )
            return
        self.key, self.auth = key, msg
        refusal = self.sessions.try_register(self)
        if refusal is not None:
            self.key, self.auth = None, None
            self.fail(refusal, CLOSE_TOO_MANY_SESSIONS)
            return
        self._registered = True
        self.registry.acquire_session(msg.model)
        self.stats = SessionStats(started=self._clock())
        self.connected_wall = self._wall()
        self._gate = RateGate(msg.target_fps)
        if msg.enable_smoothing:
            self._smoother = EmaSmoother(msg.smoothing_alpha or self.config.default_smoothing_alpha)
        self._send(
            ConnectedMessage(self.session_id, msg.model, msg.target_fps, msg.enable_smoothing, msg.enable_safety)
        )
        self._inference_task = asyncio.get_running_loop().create_task(
            self._inference_loop(), name=f"stream-infer-{self.session_id[:8]}"
        )
        log.info("session open", extra={"event": "session_open", "session": self.session_id, "model": msg.model,
                                        "key_name": key.name, "tier": key.tier.name, "target_fps": msg.target_fps,
                                        "client": self.client})

    def _on_frame(self, msg: FrameMessage, arrival: float) -> None:
        assert self._gate is not None
        frame_id = self._next_frame_id
        self._next_frame_id += 1
        self.stats.total_frames += 1
        if not self._gate.admit(arrival):
            self.stats.dropped_rate += 1
            return
        self.stats.dropped_queue += self._queue.put(_Pending(frame_id, msg, arrival, self._wall()))
        self._frame_ready.set()

    # ---- inference side ---------------------------------------------------------------------------

    async def _inference_loop(self) -> None:
        while self._closing is None:
            await self._frame_ready.wait()
            self._frame_ready.clear()
            while self._closing is None:
                item, stale = self._queue.take_newest()
                if item is None:
                    break
                self.stats.dropped_stale += stale
                try:
                    await self._process(item)
                except Exception as exc:  # a bug here must not stop the session's inference
                    self.stats.failed += 1
                    log.exception("frame processing failed", extra={"event": "session_bug", "session": self.session_id})
                    self.error(f"frame {item.frame_id}: internal error ({type(exc).__name__})")

    async def _process(self, item: _Pending) -> None:
        assert self.auth is not None
        auth, msg = self.auth, item.msg
        obs = EncodedObservation(jpeg=msg.jpeg, instruction=msg.instruction, robot_state=msg.robot_state,
                                 session=self.session_id, step=item.frame_id, timestamp=item.arrival_wall,
                                 wrist_jpeg=msg.wrist_jpeg)
        try:
            result = await self.registry.infer(auth.model, obs)  # the worker decodes the JPEG
        except InvalidInput as exc:
            self.stats.bad_frames += 1
            self.error(f"frame {item.frame_id}: {exc}")
            return
        except ModelCrashed:
            self.stats.failed += 1  # the crash itself was announced to every session of the model
            return
        except RegistryClosed:
            self.stats.failed += 1
            return
        except RegistryError as exc:
            self.stats.failed += 1
            self.error(f"frame {item.frame_id}: {exc}")
            return
        raw = np.asarray(result.actions[0], dtype=np.float64)
        sent = sanitize_action(raw, self._prev_sent)
        smoothed = False
        if self._smoother is not None and np.all(np.isfinite(raw)):
            sent = self._smoother.apply(sent)
            smoothed = True
        score = 1.0
        if auth.enable_safety:
            score = assess(raw, sent, self._prev_sent, msg.robot_state, auth.target_fps, self.config.safety).score
        self._prev_sent = sent
        now = self._clock()
        latency_ms = (now - item.arrival) * 1000.0
        self.stats.record_action(now, latency_ms, result.model_ms, score)
        self._send(ActionMessage(
            frame_id=item.frame_id, timestamp=self._wall(), action=tuple(float(v) for v in sent),
            safety_score=round(score, 6), latency_ms=round(latency_ms, 3), smoothed=smoothed,
        ))

    # ---- writer side ------------------------------------------------------------------------------

    def _send(self, msg: ServerMessage) -> None:
        if self._closing is not None:
            return
        if len(self._outbox) >= self.config.outbox_max_size:
            for i, queued in enumerate(self._outbox):
                if isinstance(queued, ActionMessage):
                    del self._outbox[i]
                    self.stats.dropped_outbox += 1
                    break
            else:
                if isinstance(msg, ActionMessage):
                    self.stats.dropped_outbox += 1
                    return
        self._outbox.append(msg)
        self._outbox_ready.set()

    async def _writer(self) -> None:
        try:
            while True:
                await self._outbox_ready.wait()
                self._outbox_ready.clear()
                while self._outbox:
                    item = self._outbox.popleft()
                    if isinstance(item, _Close):
                        await self.transport.close(item.code, item.reason)
                        return
                    await self.transport.send_text(encode_server_message(item))
        except (ConnectionError, OSError, RuntimeError) as exc:  # the client went away mid-send
            log.info("send failed", extra={"event": "send_failed", "session": self.session_id, "error": str(exc)})
            if self._closing is None:
                self._closing = _Close(CLOSE_NORMAL, "send failed")
                self._frame_ready.set()
                self._stop_reading.set()

    # ---- teardown ---------------------------------------------------------------------------------

    async def _finish(self) -> None:
        if self._closing is None:  # client disconnected without `close`
            self._closing = _Close(CLOSE_NORMAL, "client disconnected")
            self._disconnected = True
            self._stop_reading.set()
        self._frame_ready.set()
        self._outbox_ready.set()
        if self._inference_task is not None:
            self._inference_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._inference_task
        if self._writer_task is not None and not self._disconnected:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(self._writer_task), 2.0)
        if self._writer_task is not None:
            self._writer_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._writer_task
        if self._registered and self.auth is not None:
            self.sessions.unregister(self)
            self.registry.release_session(self.auth.model)
            with contextlib.suppress(RegistryError, asyncio.CancelledError):
                await asyncio.wait_for(self.registry.end_session(self.auth.model, self.session_id), 2.0)
            s = self.stats
            log.info("session closed", extra={
                "event": "session_closed", "session": self.session_id, "model": self.auth.model,
                "reason": self._closing.reason, "code": self._closing.code, "frames": s.total_frames,
                "actions": s.actions, "dropped": s.dropped, "failed": s.failed,
                "avg_latency_ms": round(s.avg_latency_ms(), 3),
            })
        self._done.set()
