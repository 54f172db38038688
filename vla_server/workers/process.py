"""`WorkerProcess`: the service's handle on one model worker subprocess.

The worker is spawned with one end of a `socket.socketpair` (no filesystem path, nothing to
authenticate) and speaks `vla_server.workers.wire`. A reader task owns the receiving side and
resolves pending requests by id; when the socket reaches EOF (the process died) every pending
request fails with `WorkerCrashed` and `on_exit` is called once — unless `stop` was asked for.
All waits are bounded by timeouts.

A second channel (`vla_server.workers.handover`) hands admitted openpi connections to the worker
(`adopt`), which serves them itself when it says it can (``info["openpi_host"]``). The service
keeps a copy of each handed-over socket: when the worker dies, the client still gets the error
text and a close (`vla_server.openpi.errors.error_frames`) from here; when the worker is
stopped (unload, eviction, shutdown), its connections are closed first (text, then 1001).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import vla_server
from vla_server.models import ModelSpec
from vla_server.openpi.errors import error_frames
from vla_server.workers import handover, wire
from vla_server.workers.errors import (
    WorkerBadInput,
    WorkerCrashed,
    WorkerRequestError,
    WorkerStartError,
    WorkerTimeout,
)
from vla_server.workers.memory import rss_mb
from vla_server.workers.shm import ImageSlots

if TYPE_CHECKING:  # numpy comes with the first frame (a service serving openpi by hand-over needs none)
    import numpy as np

    from vla_server.policies.base import Observation

_EXIT_WAIT_S = 2.0  # after EOF, how long to wait for the exit status
_READER_LIMIT = 1024 * 1024  # asyncio stream buffer; frames are read with readexactly anyway
_SOCKET_BUFFER_BYTES = 4 * 1024 * 1024  # socketpair buffers: an observation (two 224² images) in one go
_UNLOAD_CLOSE_S = 1.0  # a stopping worker's handed-over connections get this long to close cleanly
CLOSE_GOING_AWAY = 1001
REPO_ROOT = Path(vla_server.__file__).resolve().parent.parent


@dataclass(frozen=True)
class WorkerExit:
    """How a worker ended: `returncode` (negative = killed by that signal) and a readable reason."""

    returncode: int | None
    reason: str


def describe_returncode(code: int | None) -> str:
    """``exited with code 2`` / ``killed by SIGKILL`` / ``still running``."""
    if code is None:
        return "did not exit"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


def device_env(device: str) -> dict[str, str]:
    """Environment a worker gets for its device: GPUs are selected with CUDA_VISIBLE_DEVICES
    (``cuda:1`` → ``1``); CPU workers see no GPU."""
    env = {"VLA_DEVICE": device}
    if device.startswith("cuda:"):
        env["CUDA_VISIBLE_DEVICES"] = device.split(":", 1)[1]
    elif device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


@dataclass
class Adopted:
    """An openpi connection served by the worker: the service's copy of its socket, the counters
    the worker reports, and `done` (the error text the client got, or None) once it ended."""

    session: str
    keep: socket.socket
    done: asyncio.Future[str | None]
    requests: int = 0
    steps: int = 0


def spawn_worker(
    spec: ModelSpec, device: str, log_dir: Path | None, slots: ImageSlots | None = None,
    handover_end: socket.socket | None = None,
) -> tuple[subprocess.Popen[bytes], socket.socket, Path | None]:
    """Starts the worker process; returns (process, the service's socket end, log path).
    `handover_end`: the worker's end of a hand-over channel (closed here once inherited).

    Deliberately synchronous and called from the event-loop thread: PR_SET_PDEATHSIG fires when
    the *thread* that forked the child exits, so a worker must not be spawned from a pool thread.
    Its stdout and stderr go to ``log_dir/<model id>.log`` (or the service's stderr).
    """
    python = spec.python or sys.executable
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env.update(device_env(device))
    parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    for sock in (parent_sock, child_sock):  # a whole observation fits: one send, no write-ready rounds
        for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            with contextlib.suppress(OSError):  # the kernel caps it at net.core.[wr]mem_max
                sock.setsockopt(socket.SOL_SOCKET, opt, _SOCKET_BUFFER_BYTES)
    log_path = None
    log_file = None
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{spec.id}.log"
        log_file = open(log_path, "ab")  # noqa: SIM115 -- handed to the child, closed below
    cmd = [python, "-m", "vla_server.workers.main", "--fd", str(child_sock.fileno()),
           "--spec", spec.to_json(), "--parent", str(os.getpid()), "--device", device]
    fds = [child_sock.fileno()]
    if slots is not None:
        cmd += ["--shm-fd", str(slots.fd), "--shm-slots", str(slots.slots), "--shm-slot-bytes", str(slots.slot_bytes)]
        fds.append(slots.fd)
    if handover_end is not None:
        cmd += ["--openpi-fd", str(handover_end.fileno())]
        fds.append(handover_end.fileno())
    try:
        proc = subprocess.Popen(
            cmd, pass_fds=tuple(fds), env=env, stdin=subprocess.DEVNULL,
            stdout=log_file if log_file else subprocess.DEVNULL,
            stderr=log_file if log_file else None, cwd=str(REPO_ROOT),
        )
    except OSError as exc:
        parent_sock.close()
        raise WorkerStartError(f"model {spec.id!r}: cannot start worker with {python!r}: {exc}") from None
    finally:
        child_sock.close()
        if handover_end is not None:
            handover_end.close()
        if log_file:
            log_file.close()
    return proc, parent_sock, log_path


class WorkerProcess:
    """A running worker. Create with `await WorkerProcess.start(...)`; owned by one event loop."""

    def __init__(self, spec: ModelSpec, device: str, proc: subprocess.Popen[bytes],
                 reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 log_path: Path | None) -> None:
        self.spec = spec
        self.device = device
        self.proc = proc
        self.pid = proc.pid
        self._reader = reader
        self._writer = writer
        self.log_path = log_path
        self.info: dict[str, Any] = {}
        self.load_ms = 0.0
        self.started_at = time.time()
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader_task: asyncio.Task[None] | None = None
        self._on_exit: Callable[[WorkerProcess, WorkerExit], None] | None = None
        self._stopping = False
        self.exit: WorkerExit | None = None
        self._slots: ImageSlots | None = None
        self._slot_of: dict[int, int] = {}  # request id -> image slot, freed when its reply comes
        self._ctl: socket.socket | None = None  # the hand-over channel, once the worker said it serves openpi
        self._adopted: dict[str, Adopted] = {}
        self._adopt_replies: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._overran_s: float | None = None
        self.on_requests: Callable[[int], None] | None = None  # observations run on handed-over connections

    # ---- lifecycle ----------------------------------------------------------------------------

    @classmethod
    async def start(
        cls,
        spec: ModelSpec,
        *,
        device: str = "cpu",
        load_timeout_s: float = 120.0,
        log_dir: Path | None = None,
        on_exit: Callable[[WorkerProcess, WorkerExit], None] | None = None,
        openpi_host: bool = False,
    ) -> WorkerProcess:
        """Spawns the worker and waits until its policy is loaded. `openpi_host`: give it a
        hand-over channel, so it can serve openpi connections (`adopt`).

        Raises:
            WorkerStartError: load failed, the process exited, or `load_timeout_s` passed.
        """
        slots = ImageSlots.create()
        ctl, ctl_child = handover.channel() if openpi_host else (None, None)
        try:
            proc, parent_sock, log_path = spawn_worker(spec, device, log_dir, slots, ctl_child)
        except BaseException:
            if ctl is not None:
                ctl.close()
            if slots is not None:
                slots.close()
            raise
        reader, writer = await asyncio.open_unix_connection(sock=parent_sock, limit=_READER_LIMIT)
        self = cls(spec, device, proc, reader, writer, log_path)
        self._slots = slots
        self._ctl = ctl
        try:
            first = await asyncio.wait_for(wire.read_message(reader), load_timeout_s)
        except asyncio.CancelledError:  # the service is stopping while this model loads
            self.kill()
            self._close()
            raise
        except TimeoutError:
            await self._kill_and_wait()
            self._close()
            raise WorkerStartError(
                f"model {spec.id!r}: worker not ready within {load_timeout_s:.0f} s{self._log_tail()}"
            ) from None
        except (asyncio.IncompleteReadError, ConnectionError, wire.WireError) as exc:
            code = await self._wait_exit(_EXIT_WAIT_S)
            detail = describe_returncode(code) if isinstance(exc, asyncio.IncompleteReadError) else str(exc)
            await self._kill_and_wait()
            self._close()
            raise WorkerStartError(
                f"model {spec.id!r}: worker {detail} before it was ready{self._log_tail()}"
            ) from None
        if first.get("op") != "ready":
            error = first.get("error", f"unexpected first message {first.get('op')!r}")
            await self._kill_and_wait()
            self._close()
            raise WorkerStartError(f"model {spec.id!r}: loading failed: {error}{self._log_tail()}")
        self.info = dict(first.get("info") or {})
        self.load_ms = float(first.get("load_ms", 0.0))
        if ctl is not None and self.info.get("openpi_host") is True:
            ctl.setblocking(False)
            asyncio.get_running_loop().add_reader(ctl.fileno(), self._on_ctl)
        else:
            self._close_ctl()
        self._on_exit = on_exit
        self._reader_task = asyncio.get_running_loop().create_task(self._read_loop(), name=f"worker-{spec.id}")
        return self

    async def stop(self, timeout_s: float = 2.0) -> WorkerExit:
        """Asks the worker to shut down (its openpi connections closed first: text, then 1001); kills
        it if it has not exited within `timeout_s`."""
        self._stopping = True
        if self._adopted and self.alive:
            message = f"model {self.spec.id!r} was unloaded; connect again to load it"
            for session in list(self._adopted):
                self.close_adopted(session, message, CLOSE_GOING_AWAY)
            await asyncio.wait([a.done for a in self._adopted.values()], timeout=_UNLOAD_CLOSE_S)
        if self.exit is None and self.proc.poll() is None:
            try:
                await self._request({"op": "shutdown"}, timeout_s)
            except (WorkerTimeout, WorkerCrashed, WorkerRequestError, ConnectionError):
                pass
        code = await self._wait_exit(timeout_s)
        if code is None:
            code = await self._kill_and_wait()
        self._close()
        self.exit = self.exit or WorkerExit(code, describe_returncode(code))
        return self.exit

    def kill(self) -> None:
        """SIGKILLs the worker (the crash path follows, as for any death)."""
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    @property
    def alive(self) -> bool:
        return self.exit is None and self.proc.poll() is None

    def rss_mb(self) -> float | None:
        """Measured resident memory of the worker process, MiB."""
        return rss_mb(self.pid) if self.alive else None

    # ---- requests -----------------------------------------------------------------------------

    async def infer(self, obs: Observation | wire.EncodedObservation, timeout_s: float,
                    tenant: str | None = None) -> tuple[np.ndarray, float]:
        """Runs the policy on `obs`; returns ((H, 7) float64 actions, model time in the worker, ms).
        The worker serves requests round-robin across `tenant`s (default: the observation's session).

        Raises:
            WorkerBadInput: the observation's JPEG did not decode; WorkerRequestError: the policy
            failed; WorkerTimeout; WorkerCrashed.
        """
        import numpy as np

        from vla_server.policies.base import Observation

        placed = None
        if self._slots is not None and isinstance(obs, Observation):
            placed = self._slots.put([obs.image] if obs.wrist_image is None else [obs.image, obs.wrist_image])
        msg = {"op": "infer", "tenant": tenant or obs.session,
               "obs": wire.observation_to_wire(obs, placed[1] if placed else None)}
        reply = await self._request(msg, timeout_s, slot=placed[0] if placed else None)
        actions = reply.get("actions")
        if not isinstance(actions, np.ndarray) or actions.ndim != 2 or actions.shape[1] != 7:
            raise WorkerRequestError(f"model {self.spec.id!r}: reply without an (H, 7) 'actions' array")
        return actions.astype(np.float64, copy=False), float(reply.get("model_ms", 0.0))

    # ---- handed-over openpi connections -------------------------------------------------------

    @property
    def hosts_openpi(self) -> bool:
        """Whether this worker serves handed-over openpi connections."""
        return self._ctl is not None and self.alive and not self._stopping

    async def adopt(self, sock: socket.socket, params: dict[str, Any], timeout_s: float) -> Adopted | None:
        """Hands the connected `sock` (its handshake done, nothing of it read or buffered here) to
        the worker with `params` (the ``adopt`` fields of `vla_server.workers.handover`); returns its
        `Adopted`, or None when the worker refused it (the caller still owns `sock` then).

        Raises:
            WorkerCrashed: the worker did not answer; the connection was shut down.
        """
        if not self.hosts_openpi or self._ctl is None:
            return None
        session = str(params["session"])
        loop = asyncio.get_running_loop()
        adopted = Adopted(session, sock.dup(), loop.create_future())
        reply_fut: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._adopted[session] = adopted  # before the worker can report it closed
        self._adopt_replies[session] = reply_fut
        try:
            handover.send(self._ctl, {"op": "adopt", **params}, [adopted.keep.fileno()])
            async with asyncio.timeout(timeout_s):
                reply = await reply_fut
        except (OSError, TimeoutError, handover.HandoverError) as exc:
            self._adopted.pop(session, None)
            with contextlib.suppress(OSError):
                adopted.keep.shutdown(socket.SHUT_RDWR)  # whoever holds it now: the connection ends
            adopted.keep.close()
            raise WorkerCrashed(f"model {self.spec.id!r}: worker did not take the connection ({exc!r})") from None
        finally:
            self._adopt_replies.pop(session, None)
        if reply.get("op") != "adopted":
            self._adopted.pop(session, None)
            adopted.keep.close()
            return None
        return adopted

    def close_adopted(self, session: str, message: str, code: int) -> None:
        """Asks the worker to send `message`, then close `session`'s connection with `code`."""
        if session not in self._adopted:
            return
        try:
            if self._ctl is None:
                raise OSError("no hand-over channel")
            handover.send(self._ctl, {"op": "close", "session": session, "message": message, "code": code})
        except OSError:
            self._end_adopted(session, message, code)

    def set_rate(self, tenant: str, rate_hz: float | None) -> None:
        """`tenant`'s request rate on this worker's openpi connections (None: unlimited)."""
        if self._ctl is not None:
            with contextlib.suppress(OSError):
                handover.send(self._ctl, {"op": "pace", "tenant": tenant, "rate_hz": rate_hz})

    def _on_ctl(self) -> None:
        while self._ctl is not None:
            try:
                got = handover.receive(self._ctl)
            except handover.HandoverError:
                continue
            if got is None:
                return
            msg, fds = got
            for fd in fds:
                os.close(fd)
            if msg is None:  # the worker is gone; the wire socket's EOF does the rest
                self._close_ctl()
                return
            op, session = msg["op"], str(msg.get("session", ""))
            if op in ("adopted", "refused"):
                fut = self._adopt_replies.get(session)
                if fut is not None and not fut.done():
                    fut.set_result(msg)
            elif op == "counts" and isinstance(msg.get("sessions"), dict):
                for sid, counts in msg["sessions"].items():
                    self._count(str(sid), counts)
            elif op == "closed":
                self._count(session, [msg.get("requests"), msg.get("steps")])
                adopted = self._adopted.pop(session, None)
                if adopted is not None:
                    adopted.keep.close()
                    if not adopted.done.done():
                        adopted.done.set_result(msg.get("error") if isinstance(msg.get("error"), str) else None)
            elif op == "overran":
                with contextlib.suppress(TypeError, ValueError):
                    self._overran_s = float(msg.get("timeout_s"))  # type: ignore[arg-type]

    def _count(self, session: str, counts: object) -> None:
        adopted = self._adopted.get(session)
        if adopted is None or not isinstance(counts, list) or len(counts) != 2:
            return
        requests, steps = counts
        if isinstance(requests, int) and isinstance(steps, int) and steps >= adopted.steps:
            new = steps - adopted.steps  # observations that reached the model
            adopted.requests, adopted.steps = requests, steps
            if new and self.on_requests is not None:
                self.on_requests(new)

    def _end_adopted(self, session: str, message: str, code: int) -> None:
        """Tells the client `message` and closes (with the service's copy: the worker cannot)."""
        adopted = self._adopted.pop(session, None)
        if adopted is None:
            return
        with contextlib.suppress(OSError):
            adopted.keep.send(error_frames(message, code), socket.MSG_DONTWAIT)
        with contextlib.suppress(OSError):
            adopted.keep.shutdown(socket.SHUT_RDWR)
        adopted.keep.close()
        if not adopted.done.done():
            adopted.done.set_result(message)

    def _close_ctl(self) -> None:
        ctl, self._ctl = self._ctl, None
        if ctl is not None:
            with contextlib.suppress(RuntimeError, ValueError, OSError):
                asyncio.get_running_loop().remove_reader(ctl.fileno())
            ctl.close()

    async def ping(self, timeout_s: float) -> float:
        """Round trip of a ping, ms (answered even while the worker is busy: its watcher thread reads then)."""
        t0 = time.perf_counter()
        await self._request({"op": "ping"}, timeout_s)
        return (time.perf_counter() - t0) * 1000.0

    async def end_session(self, session: str, timeout_s: float) -> None:
        """Lets the policy forget a session's memory."""
        await self._request({"op": "end_session", "session": session}, timeout_s)

    async def _request(self, msg: dict[str, Any], timeout_s: float, slot: int | None = None) -> dict[str, Any]:
        if self.exit is not None:
            if slot is not None and self._slots is not None:
                self._slots.release(slot)
            raise WorkerCrashed(f"model {self.spec.id!r}: worker {self.exit.reason}")
        rid = next(self._ids)
        if slot is not None:
            self._slot_of[rid] = slot  # the worker may read it until it replies, even if we stop waiting
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        try:
            self._writer.write(wire.pack({**msg, "id": rid}))
            async with asyncio.timeout(timeout_s):  # one deadline, no task per wait (unlike wait_for)
                await self._writer.drain()
                reply = await fut
        except TimeoutError:
            raise WorkerTimeout(f"model {self.spec.id!r}: no reply to {msg['op']!r} within {timeout_s:.1f} s") from None
        except (ConnectionError, OSError) as exc:
            raise WorkerCrashed(f"model {self.spec.id!r}: worker connection lost ({exc})") from None
        finally:
            self._pending.pop(rid, None)
        if reply.get("op") == "error":
            if reply.get("kind") == "bad_input":
                raise WorkerBadInput(str(reply.get("error")))
            raise WorkerRequestError(f"model {self.spec.id!r}: {reply.get('error')}")
        return reply

    async def _read_loop(self) -> None:
        reason = "closed its socket"
        try:
            while True:
                msg = await wire.read_message(self._reader)
                slot = self._slot_of.pop(msg.get("id"), None)  # type: ignore[arg-type]
                if slot is not None and self._slots is not None:
                    self._slots.release(slot)
                fut = self._pending.get(msg.get("id"))  # type: ignore[arg-type]
                if fut is not None and not fut.done():
                    fut.set_result(msg)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except wire.WireError as exc:
            reason = f"broke the wire protocol ({exc})"
            self.kill()
        except asyncio.CancelledError:
            return
        code = await self._wait_exit(_EXIT_WAIT_S)
        if code is None:
            code = await self._kill_and_wait()
        self.exit = WorkerExit(code, describe_returncode(code) if "closed" in reason else reason)
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(WorkerCrashed(f"model {self.spec.id!r}: worker {self.exit.reason}"))
        self._end_all_adopted()
        self._close()
        if not self._stopping and self._on_exit is not None:
            self._on_exit(self, self.exit)

    # ---- helpers ------------------------------------------------------------------------------

    def _end_all_adopted(self) -> None:
        """The worker is gone: its connections get the reason from here."""
        if self._stopping:
            message, code = f"model {self.spec.id!r} was unloaded; connect again to load it", CLOSE_GOING_AWAY
        elif self._overran_s is not None:
            message, code = f"model {self.spec.id!r} did not answer within {self._overran_s:g} s", 1011
        else:
            reason = self.exit.reason if self.exit is not None else "ended"
            message, code = f"model {self.spec.id!r} worker {reason}", 1011
        for session in list(self._adopted):
            self._end_adopted(session, message, code)

    async def _wait_exit(self, timeout_s: float) -> int | None:
        deadline = time.monotonic() + timeout_s
        while True:
            code = self.proc.poll()
            if code is not None or time.monotonic() >= deadline:
                return code
            await asyncio.sleep(0.01)

    async def _kill_and_wait(self) -> int | None:
        self.kill()
        return await self._wait_exit(_EXIT_WAIT_S)

    def _close(self) -> None:
        if self._reader_task is not None and self._reader_task is not asyncio.current_task():
            self._reader_task.cancel()
        if self.proc.poll() is not None:
            self._end_all_adopted()
        self._close_ctl()
        if self._slots is not None and self.proc.poll() is not None:  # the worker no longer maps it
            self._slots.close()
            self._slots = None
        try:
            self._writer.close()
        except (RuntimeError, OSError):
            pass

    def _log_tail(self, max_bytes: int = 1500) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as f:
            f.seek(max(0, self.log_path.stat().st_size - max_bytes))
            tail = f.read().decode("utf-8", errors="replace").strip()
        return f"\n--- worker log tail ({self.log_path}) ---\n{tail}" if tail else ""
