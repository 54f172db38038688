"""`OpenPIHost`: a model worker serving the openpi connections the service hands over
(`vla_server.workers.handover`), so a request costs one process, as with openpi's own server,
while the model still runs outside the service.

The service has already authenticated the connection and admitted it against the key's tier; it
passes along what it decided: the tenant (the key), that tenant's request rate on this worker,
the size and pixel budgets and the metadata. The host runs an asyncio loop in its own thread of
the worker: per connection it sends the metadata, then per request decodes and checks it with the
service's own code (`vla_server.openpi.requests`), paces it to the tenant's rate, waits for its
turn (round-robin across tenants on this host, then the `PolicyGate` shared with the main thread's
requests) and runs the policy. A policy call that took under `FAST_JOB_S` last time runs on the
loop itself (no thread wake-up); a slower model runs in a helper thread so the loop keeps
answering (``close`` from the service: revocation, shutdown). A request running past its timeout
ends the worker, as the service would (the service then closes the connections with the reason).

Counters go back to the service (``counts``, ``closed``) for its session listing and model stats.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import threading
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from websockets.asyncio.connection import Connection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State
from websockets.server import ServerProtocol

from robot_formats.kinematics import forward as forward_kinematics
from robot_formats.openpi_codec import packb
from robot_formats.openpi_request import reply_from_chunk
from vla_server.auth.pacing import RequestPacer
from vla_server.openpi.requests import (
    OpenPIRequestError,
    decode_message,
    observation_from_request,
    reply_frame,
    send_error,
)
from vla_server.policies.base import Observation, Policy
from vla_server.workers import handover
from vla_server.workers.fair_queue import FairQueue
from vla_server.workers.gate import PolicyGate
from vla_server.workers.memory import release_free_memory

FAST_JOB_S = 0.02  # a policy call under this runs on the host's loop; slower ones in a helper thread
_WATCHDOG_S = 0.25  # how often an inline call is checked against its timeout
EXIT_OVERRAN = 75  # exit status of a worker whose request ran past its timeout


@dataclass(frozen=True)
class Adoption:
    """What the service decided for one handed-over connection (the ``adopt`` message)."""

    session: str
    tenant: str
    model: str
    metadata: dict[str, Any]
    rate_hz: float | None
    max_message_bytes: int
    ws_max_size: int
    max_pixels: int
    infer_timeout_s: float

    @classmethod
    def from_message(cls, msg: dict[str, Any]) -> Adoption:
        """Raises ValueError / TypeError / KeyError on a malformed message."""
        rate = msg["rate_hz"]
        out = cls(str(msg["session"]), str(msg["tenant"]), str(msg["model"]), dict(msg["metadata"]),
                  None if rate is None else float(rate), int(msg["max_message_bytes"]), int(msg["ws_max_size"]),
                  int(msg["max_pixels"]), float(msg["infer_timeout_s"]))
        if not (out.session and out.max_message_bytes > 0 and out.ws_max_size > 0 and out.max_pixels > 0
                and out.infer_timeout_s > 0 and (out.rate_hz is None or out.rate_hz > 0)):
            raise ValueError(f"adopt: bad limits in {msg!r}"[:300])
        return out


class _HostConnection(Connection):
    """A server-side `websockets` connection whose handshake the service did. The service keeps a
    copy of the socket (to tell the client if this worker dies), so closing our descriptor alone
    would not end the TCP connection: it is shut down first."""

    def connection_lost(self, exc: Exception | None) -> None:
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        super().connection_lost(exc)


class _Turns:
    """Round-robin across tenants among this host's connections (one policy call at a time).
    Used from the host's loop only."""

    def __init__(self) -> None:
        self._queue: FairQueue[asyncio.Future[None]] = FairQueue()
        self._running = False

    async def acquire(self, tenant: str) -> None:
        if not self._running:
            self._running = True
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put(tenant, fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # granted, then cancelled: pass the turn on
            raise

    def release(self) -> None:
        while (fut := self._queue.get_nowait()) is not None:
            if not fut.done():
                fut.set_result(None)
                return
        self._running = False


class _Conn:
    """Counters of one handed-over connection."""

    def __init__(self, adoption: Adoption) -> None:
        self.adoption = adoption
        self.requests = 0
        self.steps = 0
        self.reported = (0, 0)
        self.ws: _HostConnection | None = None
        self.closing: tuple[str, int] | None = None  # (text, close code) the service asked for


class OpenPIHost:
    """Serves handed-over openpi connections for `policy` (the worker's, shared through `gate`).

    Args:
        ctl: the worker's end of the hand-over channel.
        model_id: the model this worker runs (error texts).
    """

    def __init__(self, ctl: socket.socket, policy: Policy, gate: PolicyGate, model_id: str) -> None:
        self._ctl = ctl
        self._policy = policy
        self._gate = gate
        self._model_id = model_id
        self._send_lock = threading.Lock()
        self._conns: dict[str, _Conn] = {}
        self._rates: dict[str, float | None] = {}
        self._pacer = RequestPacer()
        self._turns = _Turns()
        self._fast = False  # unknown until a first call: run it in the helper thread
        self._job_started: float | None = None  # monotonic start of an inline policy call
        self._job_timeout_s = 0.0
        self._watch = threading.Event()  # set while connections are open
        self._pool: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._serving: asyncio.Event | None = None  # set while connections are open (the loop's twin of `_watch`)
        self._tasks: set[asyncio.Task[None]] = set()  # referenced until done (the loop keeps only weak ones)

    def start(self) -> None:
        """Serves in a daemon thread (the main thread goes on with the service's requests)."""
        threading.Thread(target=self._run, name="openpi-host", daemon=True).start()
        threading.Thread(target=self._watchdog, name="openpi-watchdog", daemon=True).start()

    # ---- the hand-over channel ----------------------------------------------------------------

    def _send(self, msg: dict[str, Any]) -> None:
        try:
            with self._send_lock:
                handover.send(self._ctl, msg)
        except OSError:  # the service is gone or stuck: the wire socket's EOF ends this process
            pass

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        self._serving = asyncio.Event()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="openpi-slow")
        self._ctl.setblocking(False)
        loop.add_reader(self._ctl.fileno(), self._on_ctl)
        counts = loop.create_task(self._push_counts())
        try:
            await asyncio.Event().wait()  # until the process ends (the main thread exits it)
        finally:
            counts.cancel()

    def _on_ctl(self) -> None:
        while True:
            try:
                got = handover.receive(self._ctl)
            except handover.HandoverError as exc:
                print(f"openpi host: {exc}", file=sys.stderr, flush=True)
                continue
            if got is None:
                return
            msg, fds = got
            if msg is None:  # the service closed the channel: it is going away
                assert self._loop is not None
                self._loop.remove_reader(self._ctl.fileno())
                return
            op = msg["op"]
            if op == "adopt":
                self._adopt(msg, fds)
                continue
            for fd in fds:
                os.close(fd)
            try:
                if op == "pace":
                    rate = msg.get("rate_hz")
                    self._rates[str(msg.get("tenant"))] = None if rate is None else float(rate)
                elif op == "close":
                    self._close(str(msg.get("session")), str(msg.get("message", "")), int(msg.get("code", 1000)))
            except (TypeError, ValueError) as exc:
                print(f"openpi host: bad {op!r} message: {exc}", file=sys.stderr, flush=True)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        assert self._loop is not None
        task = self._loop.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _adopt(self, msg: dict[str, Any], fds: list[int]) -> None:
        session = str(msg.get("session", ""))
        try:
            if len(fds) != 1:
                raise ValueError(f"adopt: expected one socket, got {len(fds)} descriptors")
            adoption = Adoption.from_message(msg)
            sock = socket.socket(fileno=fds[0])
            fds = []
        except (ValueError, TypeError, KeyError, OSError) as exc:
            for fd in fds:
                os.close(fd)
            self._send({"op": "refused", "session": session, "error": str(exc)[:500]})
            return
        conn = _Conn(adoption)
        self._conns[adoption.session] = conn
        self._rates[adoption.tenant] = adoption.rate_hz
        self._watch.set()
        assert self._serving is not None
        self._serving.set()
        self._send({"op": "adopted", "session": adoption.session})
        self._spawn(self._serve(conn, sock), f"openpi-{adoption.session[:8]}")

    def _close(self, session: str, message: str, code: int) -> None:
        conn = self._conns.get(session)
        if conn is None or conn.closing is not None:
            return
        conn.closing = (message, code)
        if conn.ws is not None:  # else `_serve` sends it once the connection is up
            self._spawn(send_error(conn.ws, message, code), f"openpi-close-{session[:8]}")

    async def _push_counts(self) -> None:
        assert self._serving is not None
        while True:
            await self._serving.wait()  # no wake-ups while no connection is open
            await asyncio.sleep(handover.COUNTS_PERIOD_S)
            changed = {}
            for sid, c in self._conns.items():
                now = (c.requests, c.steps)
                if now != c.reported:
                    changed[sid] = list(now)
                    c.reported = now
            if changed:
                self._send({"op": "counts", "sessions": changed})

    # ---- one connection -----------------------------------------------------------------------

    async def _serve(self, conn: _Conn, sock: socket.socket) -> None:
        a = conn.adoption
        error: str | None = None
        ws: _HostConnection | None = None
        try:
            sock.setblocking(False)
            ws = _HostConnection(ServerProtocol(state=State.OPEN, max_size=a.ws_max_size))
            await asyncio.get_running_loop().connect_accepted_socket(lambda: ws, sock=sock)
            conn.ws = ws
            ws.start_keepalive()
            if conn.closing is not None:
                await send_error(ws, *conn.closing)
                return
            await ws.send(packb(a.metadata))
            prev_total_ms: float | None = None
            while True:
                data = await ws.recv()
                t0 = time.monotonic()
                try:
                    reply, infer_ms = await self._answer(conn, data)
                    frame = reply_frame(reply, a.model, infer_ms, prev_total_ms)
                except OpenPIRequestError as exc:
                    error = str(exc)
                    await send_error(ws, error)
                    return
                await ws.send(frame)
                prev_total_ms = (time.monotonic() - t0) * 1000.0
        except ConnectionClosed:
            if conn.closing is not None:
                error = conn.closing[0]
        except OSError as exc:
            error = f"connection failed: {exc}"
        finally:
            if ws is not None and ws.protocol.state is not State.CLOSED:
                ws.transport.abort()
            elif ws is None:
                sock.close()
            self._conns.pop(a.session, None)
            if not self._conns:
                self._watch.clear()
                if self._serving is not None:
                    self._serving.clear()
                release_free_memory()  # the connections' message buffers: back to the kernel while idle
            if not any(c.adoption.tenant == a.tenant for c in self._conns.values()):
                self._pacer.forget(a.tenant)
                self._rates.pop(a.tenant, None)
            self._send({"op": "closed", "session": a.session, "requests": conn.requests, "steps": conn.steps,
                        "error": error})

    async def _answer(self, conn: _Conn, data: str | bytes) -> tuple[dict[str, Any], float]:
        """One request → (the checked reply map, the policy's time in ms)."""
        a = conn.adoption
        request = decode_message(data, a.max_message_bytes)
        rate = self._rates.get(a.tenant)
        if rate is not None:
            wait = self._pacer.delay(a.tenant, rate)
            if wait > 0:
                await asyncio.sleep(wait)
        conn.requests += 1
        obs = observation_from_request(request, fk=forward_kinematics, max_pixels=a.max_pixels,
                                       session=a.session, step=conn.steps)
        conn.steps += 1
        actions, infer_ms = await self._run_policy(a, obs)
        try:
            return reply_from_chunk(actions), infer_ms  # a finite (H, 7) float32 chunk, or ValueError
        except ValueError as exc:
            raise OpenPIRequestError(f"model {a.model!r} failed: {exc}") from None

    async def _run_policy(self, a: Adoption, obs: Observation) -> tuple[np.ndarray, float]:
        """(The policy's chunk for `obs`, its time in ms), in turn (tenants round-robin, then the gate)."""
        await self._turns.acquire(a.tenant)
        try:
            if not self._gate.try_enter():
                await self._gate.enter_async()
            try:
                t0 = time.perf_counter()
                try:
                    if self._fast:
                        self._job_timeout_s, self._job_started = a.infer_timeout_s, time.monotonic()
                        actions = self._policy.infer(obs)
                    else:
                        actions = await self._offloaded(obs, a.infer_timeout_s)
                except OpenPIRequestError:
                    raise
                except Exception as exc:  # noqa: BLE001 -- the policy's error goes to the client
                    raise OpenPIRequestError(f"model {a.model!r} failed: {type(exc).__name__}: {exc}") from None
                finally:
                    self._job_started = None
                took = time.perf_counter() - t0
                self._fast = took < FAST_JOB_S
            finally:
                self._gate.leave()
        finally:
            self._turns.release()
        return np.asarray(actions), took * 1000.0

    async def _offloaded(self, obs: Observation, timeout_s: float) -> Any:
        assert self._pool is not None
        fut = asyncio.get_running_loop().run_in_executor(self._pool, self._policy.infer, obs)
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout_s)
        except TimeoutError:
            self._overran(timeout_s)
            raise

    def _overran(self, timeout_s: float) -> None:
        """A request ran past its timeout: the worker ends (a hung model is restarted by the service)."""
        self._send({"op": "overran", "timeout_s": timeout_s})
        print(f"openpi host: a request ran longer than {timeout_s:g} s; exiting", file=sys.stderr, flush=True)
        os._exit(EXIT_OVERRAN)

    def _watchdog(self) -> None:
        """Ends the worker when a policy call on the loop runs past its timeout (the loop cannot)."""
        while True:
            self._watch.wait()
            time.sleep(_WATCHDOG_S)
            started = self._job_started
            if started is not None and time.monotonic() - started > self._job_timeout_s:
                self._overran(self._job_timeout_s)
