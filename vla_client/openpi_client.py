"""`OpenPIClient`: the `VLAStreamingClient` interface over openpi's wire format, with action chunks.

The connection is openpi's (a WebSocket to the server's root, msgpack metadata on connect,
one msgpack-numpy request answered by ``{"actions": (H, D), "server_timing": ...}``, an error as
a text frame then close 1011, ``Authorization: Api-Key`` header); requests and replies are built
and read by an `OpenPIAdapter` (our endpoint: `NativeAdapter`; a DROID server: `DroidAdapter`).

Frames: openpi is strictly request/reply, so at most one request is in flight; a frame sent
meanwhile waits, and a newer one replaces it (the older is counted as dropped). Each frame is
stamped with the client's monotonic time when it was handed over (`prepare_frame`): the
observation time its chunk answers.

Actions: every reply is a chunk scheduled by a `ChunkScheduler` (see `vla_client.chunks`: rows
already past on arrival skipped, overlapping chunks blended — ACT's temporal ensembling when
``enable_smoothing``, the newest chunk alone otherwise). `receive_action` emits the action
scheduled for *now*, one per action period (``1/target_fps``, or the adapter's own, e.g. DROID's
1/15 s); with ``latest=True`` it answers at once with the action for now. A server slower than a
chunk's horizon (H rows x action period) has every chunk discarded: nothing is played (a warning
is logged; `client_stats().extra["chunks_discarded"]` counts them). While the link is down,
chunks already received keep being played until their horizon ends; after that
`receive_action` raises `ConnectionLost`. openpi servers score no safety: ``safety_score`` is 1.0.
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
from typing import Any, Self
from urllib.parse import urlencode, urlsplit

import numpy as np
import websockets
from websockets.asyncio.client import ClientConnection

from robot_formats.image import decode_jpeg
from robot_formats.openpi_codec import OpenPICodecError, packb, unpackb
from robot_formats.robot_state import RobotStateIn
from robot_formats.stream.messages import ConnectedMessage, StatsMessage
from robot_formats.stream.parse import parse_robot_state
from vla_client.backoff import Backoff, open_with_retry
from vla_client.chunks import ChunkScheduler, Scheme
from vla_client.errors import (
    AuthError,
    ConnectionLost,
    NotConnected,
    ServerError,
    SessionRejected,
    Timeout,
    VLAClientError,
)
from vla_client.frames import ImageLike, RobotStateLike, SessionConfig, robot_state_dict
from vla_client.openpi_adapters import NativeAdapter, OpenPIAdapter
from vla_client.stream_client import counts_to_stats
from vla_client.types import ClientState, ClientStats, ReceivedAction

log = logging.getLogger(__name__)

FPS_WINDOW_S = 5.0  # replies per second are measured over this trailing window


@dataclass(frozen=True)
class PreparedObservation:
    """A frame ready to send: the request map, the adapter's context, when it was taken (s)."""

    request: dict[str, Any]
    context: Any
    t_obs: float


class OpenPIClient:
    """An openpi policy server behind the streaming-client interface (asyncio).

    Args:
        url: ``ws://HOST:PORT`` of the openpi server (root path).
        api_key: sent as ``Authorization: Api-Key <key>``; None/"" sends no header.
        adapter: request/reply mapping (default `NativeAdapter`, for our endpoint).
        model_query: append ``?model=<model>`` on connect (our endpoint picks the model by it;
            other openpi servers ignore it).
        scheme: chunk blending; None: ``"ensemble"`` when ``enable_smoothing`` else ``"latest"``.
        ensemble_k: ACT's weight decay (see `vla_client.chunks`).
        max_chunks: most chunks blended.
        connect_timeout_s, infer_timeout_s, send_timeout_s: waits, s.
        reconnect, backoff: as `VLAStreamingClient`.
        max_message_bytes: largest reply accepted.
        clock: monotonic clock, s (injected in tests).
    """

    def __init__(
        self,
        url: str = "ws://127.0.0.1:8001",
        api_key: str | None = None,
        *,
        adapter: OpenPIAdapter | None = None,
        model_query: bool = True,
        scheme: Scheme | None = None,
        ensemble_k: float = 0.01,
        max_chunks: int = 8,
        connect_timeout_s: float = 5.0,
        infer_timeout_s: float = 10.0,
        send_timeout_s: float = 2.0,
        reconnect: bool = True,
        backoff: Backoff | None = None,
        max_message_bytes: int = 64 << 20,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not url.startswith(("ws://", "wss://")):
            raise ValueError(f"url: expected ws://HOST:PORT of an openpi server, got {url!r}")
        self.url = url
        self._api_key = api_key or None
        self.adapter: OpenPIAdapter = adapter or NativeAdapter()
        self.model_query = model_query
        self._scheme = scheme
        self.ensemble_k = ensemble_k
        self.max_chunks = max_chunks
        self.connect_timeout_s = connect_timeout_s
        self.infer_timeout_s = infer_timeout_s
        self.send_timeout_s = send_timeout_s
        self.reconnect = reconnect
        self.backoff = backoff or Backoff()
        self.max_message_bytes = max_message_bytes
        self._clock = clock
        self._state: ClientState = "idle"
        self._cfg: SessionConfig | None = None
        self.metadata: dict[str, Any] = {}
        self.scheduler: ChunkScheduler | None = None
        self._ws: ClientConnection | None = None
        self._session_id = ""
        self._pending: PreparedObservation | None = None
        self._wake: asyncio.Event | None = None  # new chunk, error, state change (receivers)
        self._work: asyncio.Event | None = None  # a frame is pending (the worker)
        self._errors: deque[ServerError] = deque(maxlen=16)
        self._fatal: VLAClientError | None = None
        self._worker: asyncio.Task[None] | None = None
        self._next_emit = 0.0
        self._started = 0.0
        self._reply_times: deque[float] = deque()
        self._rtts: deque[float] = deque(maxlen=256)
        self._counts = {"frames_sent": 0, "frames_dropped": 0, "actions_received": 0, "actions_dropped": 0,
                        "server_errors": 0, "protocol_violations": 0, "reconnects": 0}
        self._frame_seq = 0
        self._pending_id = -1
        self._session_number = 0
        self._last_error = ""

    # ---- public API -------------------------------------------------------------------------

    @property
    def state(self) -> ClientState:
        return self._state

    @property
    def session_number(self) -> int:
        """Sessions opened by `connect` (frame ids run on across reconnects, so 1 after it)."""
        return self._session_number

    @property
    def action_dt_s(self) -> float:
        """The action period used to schedule chunk rows, s."""
        assert self._cfg is not None, "connect first"
        return self.adapter.action_dt_s or 1.0 / self._cfg.target_fps

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
        """Connects and reads the server's metadata. `model` goes in the URL query (see
        `model_query`); `enable_smoothing` picks chunk ensembling; `enable_safety` and
        `smoothing_alpha` have no openpi counterpart (no safety score; ACT weights instead of EMA).

        Raises:
            AuthError: HTTP 401/403. ConnectionLost: unreachable (within `wait_s`). Timeout.
        """
        if self._state not in ("idle", "closed"):
            raise VLAClientError(f"connect: the client is already {self._state}; close it first")
        self._cfg = SessionConfig(
            model, robot_type, float(target_fps), enable_smoothing, enable_safety, smoothing_alpha
        )
        scheme: Scheme = self._scheme or ("ensemble" if enable_smoothing else "latest")
        self.scheduler = ChunkScheduler(self.action_dt_s, scheme, self.ensemble_k, self.max_chunks)
        self._wake, self._work = asyncio.Event(), asyncio.Event()
        self._fatal, self._pending = None, None
        self._errors.clear()
        self._state = "connecting"
        try:
            ws = await open_with_retry(self._open, self.backoff, self._clock, wait_s)
        except VLAClientError:
            self._state = "closed"
            raise
        self._session_id = str(uuid.uuid4())
        self._session_number += 1
        self._started = self._clock()
        self._attach(ws)
        self._worker = asyncio.create_task(self._run(), name="openpi-client-worker")
        return ConnectedMessage(self._session_id, model, float(target_fps), enable_smoothing, False)

    def prepare_frame(
        self, image: ImageLike, instruction: str, robot_state: RobotStateLike | None = None
    ) -> PreparedObservation:
        """Builds the request now (the observation time); callable from any thread.

        Raises:
            ValueError/TypeError: bad image, instruction or state.
        """
        if isinstance(image, (bytes, bytearray, memoryview)):
            arr = decode_jpeg(bytes(image), "image")
        else:
            arr = np.asarray(image)
            if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
                raise ValueError(
                    f"image: expected an (H, W, 3) uint8 RGB array or JPEG bytes, got {arr.dtype} {arr.shape}"
                )
        if not isinstance(instruction, str):
            raise TypeError(f"instruction: expected a string, got {type(instruction).__name__}")
        state_d = robot_state_dict(robot_state)
        state: RobotStateIn | None = None if state_d is None else parse_robot_state(state_d, "robot_state")
        request, context = self.adapter.request(arr, instruction, state)
        return PreparedObservation(request, context, self._clock())

    async def send_frame(self, image: ImageLike, instruction: str, robot_state: RobotStateLike | None = None) -> int:
        """Queues a frame (newest wins while a request is in flight); returns its frame id (ids
        count the frames queued since `connect`; a frame replaced before it was sent never gets
        an answer).

        Raises:
            ValueError: bad input. ConnectionLost: link down. NotConnected, SessionRejected.
        """
        self._check_usable()
        return await self.send_prepared(self.prepare_frame(image, instruction, robot_state))

    async def send_prepared(self, prepared: PreparedObservation) -> int:
        """Queues a frame made by `prepare_frame`; returns its frame id."""
        self._check_usable(need_link=True)
        if self._pending is not None:
            self._counts["frames_dropped"] += 1
        self._pending = prepared
        self._pending_id = self._frame_seq
        self._frame_seq += 1
        assert self._work is not None
        self._work.set()
        return self._pending_id

    async def receive_action(self, timeout: float = 1.0, latest: bool = False) -> ReceivedAction:
        """The action scheduled for now: paced one per action period, or at once with `latest`.

        Raises:
            Timeout: nothing scheduled within `timeout`. ServerError: the server failed a request
            (reported once). ConnectionLost: nothing scheduled and the link is down.
        """
        self._check_usable()
        assert self.scheduler is not None and self._wake is not None
        deadline = self._clock() + timeout
        dt = self.scheduler.dt
        while True:
            if self._errors:
                raise self._errors.popleft()
            now = self._clock()
            if not latest and now < self._next_emit:
                if self._next_emit > deadline:
                    await self._sleep_until(deadline)
                    raise Timeout(f"no action due within {timeout} s (next one at the action period)")
                await self._sleep_until(self._next_emit)
                continue
            self.scheduler.prune(now)
            planned = self.scheduler.action_at(now)
            if planned is not None:
                if not latest:
                    self._next_emit = max(self._next_emit + dt, now)
                self._counts["actions_received"] += 1
                return ReceivedAction(
                    frame_id=planned.frame_id,
                    timestamp=time.time(),
                    action=planned.action.copy(),
                    safety_score=1.0,
                    latency_ms=(now - planned.t_obs) * 1000.0,
                    smoothed=len(planned.sources) > 1,
                    received_at=now,
                    session_number=self._session_number,
                )
            self._check_usable(need_link=True)
            if now >= deadline:
                raise Timeout(f"no action within {timeout} s")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(deadline - now):
                    await self._wake.wait()

    async def get_stats(self, timeout: float = 1.0) -> StatsMessage:
        """Session statistics measured by the client (openpi servers keep none)."""
        self._check_usable()
        assert self._cfg is not None and self.scheduler is not None
        now = self._clock()
        self._trim_fps_window(now)
        window = min(FPS_WINDOW_S, max(now - self._started, 1e-6))
        total = self._counts["frames_sent"] + self._counts["frames_dropped"] + (1 if self._pending else 0)
        dropped = self._counts["frames_dropped"]
        remaining = max(0.0, self.scheduler.covered_until(now) - now)
        return StatsMessage(
            session_id=self._session_id,
            runtime_seconds=now - self._started,
            total_frames=total,
            dropped_frames=dropped,
            drop_rate_percent=100.0 * dropped / total if total else 0.0,
            target_fps=self._cfg.target_fps,
            actual_fps=len(self._reply_times) / window,
            avg_latency_ms=float(np.mean(self._rtts)) if self._rtts else 0.0,
            frame_queue_size=1 if self._pending else 0,
            action_queue_size=int(remaining / self.scheduler.dt),
        )

    def client_stats(self) -> ClientStats:
        s = self.scheduler
        extra = {"chunks_received": s.chunks_added if s else 0, "rows_skipped_stale": s.rows_skipped if s else 0,
                 "chunks_discarded": s.chunks_discarded if s else 0, "metadata": dict(self.metadata)}
        return counts_to_stats(self._counts, self._state, self._rtts, self._last_error, extra)

    async def close(self, timeout: float = 2.0) -> None:
        """Closes the connection and stops the worker. Idempotent."""
        if self._state == "closed" and self._worker is None:
            return
        self._state = "closed"
        if self._fatal is None:
            self._fatal = NotConnected("the client was closed")
        worker, self._worker = self._worker, None
        if worker is not None and worker is not asyncio.current_task():
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(worker, timeout)
        ws, self._ws = self._ws, None
        if ws is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(timeout):
                    await ws.close(1000, "client closed")
        self._poke()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- internals ---------------------------------------------------------------------------

    def _check_usable(self, need_link: bool = False) -> None:
        if self._fatal is not None and not isinstance(self._fatal, ConnectionLost):
            raise self._fatal
        if self._state == "idle" or self._cfg is None:
            raise NotConnected("call connect() first")
        if self._state == "closed":
            raise self._fatal or NotConnected("the client was closed")
        if need_link and (self._ws is None or self._state != "connected"):
            raise ConnectionLost(f"not connected to {self.url} ({self._state})")

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _sleep_until(self, t: float) -> None:
        delay = t - self._clock()
        if delay > 0:
            await asyncio.sleep(delay)

    def _trim_fps_window(self, now: float) -> None:
        while self._reply_times and self._reply_times[0] < now - FPS_WINDOW_S:
            self._reply_times.popleft()

    def _connect_url(self) -> str:
        if not (self.model_query and self._cfg is not None):
            return self.url
        parts = urlsplit(self.url)
        if parts.query:
            return self.url
        base = self.url if parts.path else self.url + "/"
        return f"{base}?{urlencode({'model': self._cfg.model})}"

    async def _open(self) -> ClientConnection:
        url = self._connect_url()
        headers = {"Authorization": f"Api-Key {self._api_key}"} if self._api_key else None
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                ws = await websockets.connect(
                    url, open_timeout=None, compression=None, max_size=self.max_message_bytes,
                    additional_headers=headers, ping_interval=10.0, ping_timeout=10.0, close_timeout=1.0,
                )
        except TimeoutError as exc:
            raise Timeout(f"connecting to {url} took longer than {self.connect_timeout_s} s") from exc
        except websockets.InvalidStatus as exc:
            status = exc.response.status_code
            body = exc.response.body.decode("utf-8", "replace").strip() if exc.response.body else ""
            if status in (401, 403):
                raise AuthError(f"{url} refused the connection: HTTP {status} {body}".strip(), status) from exc
            raise ConnectionLost(f"{url} refused the connection: HTTP {status} {body}".strip()) from exc
        except (OSError, websockets.InvalidHandshake, websockets.InvalidURI) as exc:
            raise ConnectionLost(f"cannot connect to {url}: {exc}") from exc
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                frame = await ws.recv()
            if isinstance(frame, str):
                raise ServerError(f"openpi server error on connect: {frame[:2000]}")
            meta = unpackb(frame)
        except TimeoutError as exc:
            await _abort(ws)
            raise Timeout(f"no metadata frame from {url} within {self.connect_timeout_s} s") from exc
        except websockets.ConnectionClosed as exc:
            raise ConnectionLost(f"{url} closed before sending its metadata: {exc}") from exc
        except OpenPICodecError as exc:
            await _abort(ws)
            raise ConnectionLost(f"{url} sent undecodable metadata: {exc}") from exc
        except ServerError:
            await _abort(ws)
            raise
        self.metadata = meta if isinstance(meta, dict) else {"metadata": meta}
        return ws

    def _attach(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._state = "connected"
        self._poke()
        log.info("openpi session %s to %s (metadata keys %s)", self._session_id, self.url, sorted(self.metadata))

    async def _run(self) -> None:
        """Sends pending frames one at a time and schedules the replies; reconnects on loss."""
        try:
            while self._state != "closed":
                lost = await self._serve_connection()
                if self._state == "closed":
                    return
                self._ws = None
                self._last_error = lost
                if not self.reconnect:
                    self._give_up(ConnectionLost(lost))
                    return
                self._state = "reconnecting"
                self._poke()
                log.warning("openpi client: %s; reconnecting", lost)
                while self._state == "reconnecting":
                    await asyncio.sleep(self.backoff.next_delay())
                    try:
                        ws = await self._open()
                    except SessionRejected as exc:
                        self._give_up(exc)
                        return
                    except VLAClientError as exc:
                        self._last_error = str(exc)
                        continue
                    self.backoff.reset()
                    self._counts["reconnects"] += 1
                    self._attach(ws)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("openpi client worker failed")
            self._give_up(VLAClientError(f"client failure: {type(exc).__name__}: {exc}"))

    async def _serve_connection(self) -> str:
        """Runs requests on the current connection; returns why it ended."""
        ws = self._ws
        assert ws is not None
        closed = asyncio.ensure_future(ws.wait_closed())
        try:
            return await self._requests(ws, closed)
        finally:
            closed.cancel()

    async def _requests(self, ws: ClientConnection, closed: asyncio.Future[Any]) -> str:
        assert self._work is not None and self.scheduler is not None
        while self._state == "connected":
            if self._pending is None:
                self._work.clear()
                work: asyncio.Future[Any] = asyncio.ensure_future(self._work.wait())
                waits: list[asyncio.Future[Any]] = [work, closed]
                try:
                    # idle: wait for a frame, noticing a connection the server closes meanwhile
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    work.cancel()
                if closed.done():
                    return "the server closed the connection"
                if self._pending is None:
                    continue
            prepared, self._pending = self._pending, None
            frame_id = self._pending_id
            t_send = self._clock()
            try:
                async with asyncio.timeout(self.send_timeout_s):
                    await ws.send(packb(prepared.request))
                self._counts["frames_sent"] += 1
                async with asyncio.timeout(self.infer_timeout_s):
                    frame = await ws.recv()
            except TimeoutError:
                await _abort(ws)  # a late reply must never be paired with the next request
                return f"no reply within {self.infer_timeout_s} s"
            except websockets.ConnectionClosed as exc:
                return f"connection closed: {exc}"
            except OpenPICodecError as exc:  # our own request cannot be encoded: the adapter's bug
                self._report(ServerError(f"request could not be encoded: {exc}"))
                continue
            t_arr = self._clock()
            if isinstance(frame, str):
                self._report(ServerError(f"openpi server error: {frame[:2000]}"))
                await _abort(ws)
                return "the server failed a request (error frame, close 1011)"
            try:
                reply = unpackb(frame)
                if not isinstance(reply, dict) or "actions" not in reply:
                    got = sorted(reply) if isinstance(reply, dict) else type(reply).__name__
                    raise ValueError(f"expected a map with 'actions', got {got}")
                rows = self.adapter.actions(reply["actions"], prepared.context)
                if self.scheduler.add(frame_id, prepared.t_obs, t_arr, rows) == len(rows):
                    self._warn_discarded(len(rows), t_arr - prepared.t_obs)
            except (OpenPICodecError, ValueError) as exc:
                self._counts["protocol_violations"] += 1
                self._report(ServerError(f"unusable openpi reply: {exc}"))
                continue
            self._rtts.append((t_arr - t_send) * 1000.0)
            self._reply_times.append(t_arr)
            self._trim_fps_window(t_arr)
            self._poke()
        return "closed"

    def _warn_discarded(self, rows: int, age_s: float) -> None:
        assert self.scheduler is not None
        n = self.scheduler.chunks_discarded
        if n == 1 or n % 50 == 0:
            log.warning(
                "openpi chunk arrived %.0f ms after its observation, past its %d rows x %.0f ms: discarded "
                "(%d so far). The server's latency exceeds the chunk's horizon at this action period.",
                age_s * 1000, rows, self.scheduler.dt * 1000, n,
            )

    def _report(self, err: ServerError) -> None:
        self._counts["server_errors"] += 1
        self._last_error = str(err)
        self._errors.append(err)
        self._poke()

    def _give_up(self, exc: VLAClientError) -> None:
        self._fatal = exc
        self._state = "closed"
        self._last_error = str(exc)
        self._poke()


async def _abort(ws: ClientConnection) -> None:
    with contextlib.suppress(Exception):
        async with asyncio.timeout(1.0):
            await ws.close()
