"""A model worker process: ``python -m vla_server.workers.main --fd N --spec JSON --parent PID``.

Builds one policy from its `ModelSpec` (through `vla_server.policies.factory.build_policy`),
loads it, says ``ready`` over the inherited socket (fd N) and serves requests until told to shut
down. The main thread reads the socket itself (no thread handoff per request); while a job runs
longer than `_WATCH_AFTER_S` (or the policy loads) a watcher thread reads instead, so ``ping`` is
answered within ~`_WATCH_AFTER_S` even while the main thread is inside a long `infer`, and the
service's health check tells a slow model from a dead one. Requests wait in a
`FairQueue` keyed by their ``tenant``: served round-robin across tenants, so one tenant cannot
take more than its share of the model's time.

With ``--openpi-fd`` it also serves the openpi connections the service hands over
(`vla_server.workers.openpi_host`, a thread of its own); the policy is then shared through a
`PolicyGate` (one call at a time, FIFO turns between the two threads).

It never outlives the service: PR_SET_PDEATHSIG(SIGKILL) is set first thing, the parent pid is
checked against ``--parent`` (the parent may have died before prctl), and EOF on the socket (the
parent's end closes when the parent dies) ends the process at once.

The interpreter running this may be another environment's (`ModelSpec.python`); it needs numpy,
scipy and msgpack (and ``websockets`` to serve openpi connections), and finds `vla_server` through
PYTHONPATH, which the service sets.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any

from vla_server.models import ModelSpec
from vla_server.policies.base import BadInput
from vla_server.workers.fair_queue import FairQueue
from vla_server.workers.gate import PolicyGate
from vla_server.workers.memory import release_free_memory

_PR_SET_PDEATHSIG = 1
_POLL_S = 1.0  # every blocking wait in here gives up after this long and re-checks the stop flag
_WATCH_AFTER_S = 0.02  # a job running longer than this: the watcher thread reads the socket meanwhile
_WATCH_POLL_S = 0.01  # while a long job runs, how long the watcher waits for the socket at a time, s
_IDLE_WAIT_S = 0.5  # an idle watcher sleeps until a job starts (waking this often to see `stop`)


def set_parent_death_signal(parent_pid: int) -> None:
    """Asks the kernel to SIGKILL this process when its parent dies; exits if it already has."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the socket EOF still ends the worker
        pass
    if os.getppid() != parent_pid:
        os._exit(3)


class _Worker:
    """Serves one policy. The main thread reads the socket itself (no thread handoff per request):
    it blocks on the socket while idle, and before each job takes every request already waiting
    into the `FairQueue`. While a job runs longer than `_WATCH_AFTER_S`, the watcher thread takes
    over reading (under `read_lock`), so pings are answered and requests queue meanwhile."""

    def __init__(self, sock: socket.socket) -> None:
        from vla_server.workers import wire

        self.wire = wire
        self.sock = sock
        self.send_lock = threading.Lock()
        self.read_lock = threading.Lock()  # one reader of the socket at a time: whole messages
        self.jobs: FairQueue[dict[str, Any]] = FairQueue()
        self.stop = threading.Event()
        self.busy = False
        self.busy_since = 0.0  # monotonic start of the running job
        self.job_started = threading.Event()  # wakes the watcher (set by `begin_job`)
        self.slots: Any = None  # ImageSlots shared with the service, when it gave one
        self.gate = PolicyGate()  # the policy is shared with the openpi host's thread, when there is one

    def call(self, fn: Any, *args: Any) -> Any:
        """`fn(*args)` (a policy method) in this thread's turn at the policy."""
        self.gate.enter()
        try:
            return fn(*args)
        finally:
            self.gate.leave()

    def send(self, msg: dict[str, Any]) -> None:
        data = self.wire.pack(msg)
        with self.send_lock:
            self.sock.sendall(data)

    def _read_one(self) -> bool:
        """Reads one message (caller holds `read_lock`; the socket is readable or may block up to
        its timeout) and dispatches it: pings answered, shutdown done, the rest queued. False on
        a timeout."""
        try:
            msg = self.wire.recv_message_sync(self.sock)
        except TimeoutError:
            return False
        except (EOFError, OSError):
            os._exit(0)  # the service is gone: nothing to clean up that the kernel will not
        except self.wire.WireError as exc:
            self.send({"op": "error", "id": -1, "error": f"worker could not decode a request: {exc}"})
            return True
        op = msg["op"]
        if op == "ping":
            self.send({"op": "pong", "id": msg.get("id"), "busy": self.busy})
        elif op == "shutdown":
            self.stop.set()
            self.jobs.close()
            self.send({"op": "ok", "id": msg.get("id")})
        else:
            self.jobs.put(str(msg.get("tenant") or ""), msg)
        return True

    def _readable(self, timeout_s: float) -> bool:
        return bool(select.select([self.sock], [], [], timeout_s)[0])

    def pump(self, block: bool) -> None:
        """Main thread: reads what is waiting (all of it, for fairness); `block`: waits up to
        `_POLL_S` for a first message."""
        with self.read_lock:
            if block:
                self._read_one()
            while not self.stop.is_set() and self._readable(0):
                self._read_one()

    def begin_job(self) -> None:
        """Marks the main thread busy from now (a job or the policy's load): the watcher wakes."""
        self.busy_since, self.busy = time.monotonic(), True
        self.job_started.set()

    def watcher(self) -> None:
        """Reads the socket while the main thread is inside a long job (pings answered at once);
        sleeps while the worker is idle."""
        while not self.stop.is_set():
            if not self.job_started.wait(_IDLE_WAIT_S):
                continue
            self.job_started.clear()
            while self.busy and not self.stop.is_set():
                young_s = self.busy_since + _WATCH_AFTER_S - time.monotonic()
                if young_s > 0:  # short jobs never need the watcher
                    time.sleep(young_s)
                    continue
                if self._readable(_WATCH_POLL_S) and self.busy:
                    with self.read_lock:
                        if self._readable(0):
                            self._read_one()

    def serve(self, policy: Any) -> None:
        """Main-thread loop: reads requests and runs them one at a time, fairest tenant first."""
        self.sock.settimeout(_POLL_S)
        while not self.stop.is_set():
            self.pump(block=len(self.jobs) == 0)
            msg = self.jobs.get_nowait()
            if msg is not None:
                self.handle(policy, msg)

    def handle(self, policy: Any, msg: dict[str, Any]) -> None:
        import numpy as np

        rid, op = msg.get("id"), msg["op"]
        try:
            if op == "infer":
                obs = self.wire.observation_from_wire(msg["obs"], self.slots)
                self.begin_job()  # from here: the watcher answers pings, also while waiting for the turn
                self.gate.enter()
                t0 = time.perf_counter()
                try:
                    actions = policy.infer(obs)
                finally:
                    model_ms = (time.perf_counter() - t0) * 1000.0
                    self.gate.leave()
                    self.busy = False
                arr = np.asarray(actions, dtype=np.float64)
                if arr.ndim == 1:
                    arr = arr[None, :]
                if arr.ndim != 2 or arr.shape[1] != 7 or arr.shape[0] < 1:
                    raise ValueError(f"policy returned shape {arr.shape}; expected (H, 7) with H >= 1")
                self.send({"op": "result", "id": rid, "actions": arr, "model_ms": model_ms})
            elif op == "end_session":
                self.call(policy.end_session, str(msg.get("session", "")))
                self.send({"op": "ok", "id": rid})
            elif op == "export_session":  # a policy without memory exports nothing
                export = getattr(policy, "export_session", None)
                data = bytes(self.call(export, str(msg.get("session", "")))) if callable(export) else b""
                self.send({"op": "ok", "id": rid, "data": data})
            elif op == "import_session":
                restore = getattr(policy, "import_session", None)
                if callable(restore):
                    self.call(restore, str(msg.get("session", "")), bytes(msg.get("data") or b""))
                self.send({"op": "ok", "id": rid})
            else:
                self.send({"op": "error", "id": rid, "error": f"unknown op {op!r}"})
        except self.wire.BadObservation as exc:  # the client's frame, not the model, is at fault
            self.send({"op": "error", "id": rid, "kind": "bad_input", "error": str(exc)})
        except BadInput as exc:  # what the request asks for, e.g. an unknown instruction
            self.send({"op": "error", "id": rid, "kind": "bad_input", "error": f"{type(exc).__name__}: {exc}"})
        except Exception as exc:  # noqa: BLE001 -- a policy error is reported, the worker lives on
            self.send({"op": "error", "id": rid, "error": f"{type(exc).__name__}: {exc}"})


def start_openpi_host(fd: int | None, policy: Any, gate: PolicyGate, model_id: str) -> bool:
    """Starts serving handed-over openpi connections on the channel `fd`; False when none was given
    or this interpreter lacks what it needs (``websockets``): the service then serves them itself."""
    if fd is None:
        return False
    ctl = socket.socket(fileno=fd)
    try:
        from vla_server.workers.openpi_host import OpenPIHost
    except ImportError as exc:
        print(f"openpi connections stay with the service: {exc}", file=sys.stderr, flush=True)
        ctl.close()
        return False
    OpenPIHost(ctl, policy, gate, model_id).start()
    return True


@dataclass(frozen=True)
class WorkerArgs:
    """The command line `spawn_worker` writes (``--fd N --spec JSON --parent PID ...``).

    Attributes:
        fd: the inherited socket to the service. spec: the `ModelSpec` as JSON. parent: the
        service's pid. device: assigned by the registry. shm_fd / shm_slots / shm_slot_bytes: the
        inherited shared-memory file for images (`ImageSlots`). openpi_fd: the inherited hand-over
        channel (serve openpi connections).
    """

    fd: int
    spec: str
    parent: int
    device: str = "cpu"
    shm_fd: int | None = None
    shm_slots: int = 0
    shm_slot_bytes: int = 0
    openpi_fd: int | None = None


_INT_FLAGS = ("fd", "parent", "shm_fd", "shm_slots", "shm_slot_bytes", "openpi_fd")
_FLAGS = {"--" + name.replace("_", "-"): name for name in (*_INT_FLAGS, "spec", "device")}


def parse_args(argv: list[str]) -> WorkerArgs:
    """``--flag value`` pairs (no argparse: the worker imports only what it serves with); exits 2
    with the reason on an unknown flag, a missing value or a missing ``--fd/--spec/--parent``."""
    values: dict[str, Any] = {}
    pairs = iter(argv)
    for flag in pairs:
        name, value = _FLAGS.get(flag), next(pairs, None)
        try:
            if name is None or value is None:
                raise ValueError(f"expected --flag value pairs of {sorted(_FLAGS)}, got {flag!r}")
            if name in _INT_FLAGS and not value.lstrip("-").isdigit():
                raise ValueError(f"{flag}: expected an integer, got {value!r}")
            values[name] = int(value) if name in _INT_FLAGS else value
        except ValueError as exc:
            print(f"vla_server.workers.main: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
    missing = sorted({"fd", "spec", "parent"} - set(values))
    if missing:
        print(f"vla_server.workers.main: missing {', '.join('--' + m for m in missing)}", file=sys.stderr)
        raise SystemExit(2)
    return WorkerArgs(**values)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    set_parent_death_signal(args.parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the service stops us
    sock = socket.socket(fileno=args.fd)
    worker = _Worker(sock)
    if args.shm_fd is not None:
        from vla_server.workers.shm import ImageSlots

        worker.slots = ImageSlots.attach(args.shm_fd, args.shm_slots, args.shm_slot_bytes)
    # until the policy is loaded, the watcher answers pings (and queues requests): the load is a long job
    worker.begin_job()
    worker.sock.settimeout(_POLL_S)
    threading.Thread(target=worker.watcher, name="worker-watcher", daemon=True).start()
    try:
        # the factory imports only the backend this spec names
        from vla_server.policies.factory import build_policy

        spec = ModelSpec.from_json(args.spec)
        t0 = time.perf_counter()
        policy = build_policy(spec, isolate=False)  # this process is the model's own interpreter
        policy.load()
        load_ms = (time.perf_counter() - t0) * 1000.0
        info = policy.info()
        release_free_memory()  # the load's temporaries: the registry measures the settled size
        host = start_openpi_host(args.openpi_fd, policy, worker.gate, spec.id)
        worker.busy = False
        worker.send({
            "op": "ready",
            "pid": os.getpid(),
            "load_ms": load_ms,
            "device": args.device,
            "info": {
                "name": info.name,
                "backend": info.backend,
                "action_horizon": int(info.action_horizon),
                "description": info.description,
                "extra": json.loads(json.dumps(dict(info.extra), default=str)),  # plain data, e.g. tasks
                "openpi_host": host,
            },
        })
    except Exception as exc:  # noqa: BLE001 -- reported to the service, which shows it
        tb = traceback.format_exc(limit=8)
        print(tb, file=sys.stderr, flush=True)
        worker.send({"op": "load_failed", "error": f"{type(exc).__name__}: {exc}"})
        return 2
    try:
        worker.serve(policy)
    finally:
        worker.gate.enter()  # the openpi host's call in flight (if any) ends first; none starts after
        policy.close()
    sys.stderr.flush()
    os._exit(0)  # skip interpreter teardown (tens of ms of module finalisers): eviction is faster


if __name__ == "__main__":
    sys.exit(main())
