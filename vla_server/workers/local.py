"""`WorkerPolicy`: a model whose catalog entry names another interpreter (``python:``), used
in-process (the arena, benchmarks) through its own worker subprocess.

The service runs such models in their worker already (`vla_server.workers.process`); in-process
callers get this `Policy`, which spawns the same ``vla_server.workers.main`` with the model's
interpreter and speaks the worker wire synchronously: ``infer``, ``end_session`` and
``export_session`` / ``import_session`` (so split arena episodes carry the policy's memory).
Every wait is bounded (`timeout_s`); the worker dies with its parent (PR_SET_PDEATHSIG, EOF).
"""

from __future__ import annotations

import itertools
import socket
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from vla_server.models import ModelSpec
from vla_server.policies.base import Observation, Policy, PolicyInfo
from vla_server.workers import wire
from vla_server.workers.errors import WorkerBadInput, WorkerCrashed, WorkerRequestError, WorkerStartError


class WorkerPolicy(Policy):
    """`spec`'s policy in a worker subprocess run by ``spec.python``.

    Args:
        spec: the catalog entry (its ``python`` must be set).
        load_timeout_s: longest wait for the worker to load the model.
        timeout_s: longest wait for one request.
        log_dir: the worker's stdout/stderr go to ``log_dir/<id>.log`` (None: this process's stderr).
    """

    def __init__(self, spec: ModelSpec, load_timeout_s: float = 300.0, timeout_s: float = 120.0,
                 log_dir: Path | None = None) -> None:
        if not spec.python:
            raise ValueError(f"model {spec.id!r}: WorkerPolicy needs a catalog 'python:' interpreter")
        self.spec = spec
        self.load_timeout_s = load_timeout_s
        self.timeout_s = timeout_s
        self.log_dir = log_dir
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._ids = itertools.count(1)
        self._info: dict[str, Any] = {}
        self.load_ms = 0.0
        self.model_ms: list[float] = []  # the worker's own time of each infer (the newest 10 000)

    def info(self) -> PolicyInfo:
        i = self._info
        return PolicyInfo(name=str(i.get("name", self.spec.id)), backend=str(i.get("backend", self.spec.backend)),
                          action_horizon=int(i.get("action_horizon", 1)),
                          description=str(i.get("description", self.spec.description)),
                          extra={**dict(i.get("extra") or {}), "python": self.spec.python, "pid": self.pid})

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def load(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        from vla_server.workers.process import spawn_worker

        python = Path(str(self.spec.python)).expanduser()
        if not python.exists():
            hint = (" — build the LeRobot environment with `tools/make_lerobot_env.sh` (it prints this path)"
                    if self.spec.backend == "lerobot" else "")
            raise WorkerStartError(f"model {self.spec.id!r}: its worker interpreter {python} does not exist{hint}")
        self._proc, self._sock, _ = spawn_worker(self.spec, "cpu", self.log_dir)
        self._sock.settimeout(self.load_timeout_s)
        try:
            first = wire.recv_message_sync(self._sock)
        except (OSError, EOFError, wire.WireError) as exc:
            code = self._kill()
            raise WorkerStartError(f"model {self.spec.id!r}: worker ended before it was ready "
                                   f"({type(exc).__name__}: {exc}; exit {code})") from None
        if first.get("op") != "ready":
            self._kill()
            raise WorkerStartError(f"model {self.spec.id!r}: loading failed: {first.get('error', first)}")
        self._info = dict(first.get("info") or {})
        self.load_ms = float(first.get("load_ms", 0.0))

    def _request(self, msg: dict[str, Any]) -> dict[str, Any]:
        if self._sock is None or self._proc is None or self._proc.poll() is not None:
            self.load()
        assert self._sock is not None
        rid = next(self._ids)
        self._sock.settimeout(self.timeout_s)
        try:
            self._sock.sendall(wire.pack({**msg, "id": rid}))
            while True:
                reply = wire.recv_message_sync(self._sock)
                if reply.get("id") == rid:
                    break
        except (OSError, EOFError) as exc:
            code = self._kill()
            raise WorkerCrashed(f"model {self.spec.id!r}: worker lost during {msg['op']} "
                                f"({type(exc).__name__}: {exc}; exit {code})") from None
        if reply.get("op") == "error":
            if reply.get("kind") == "bad_input":
                raise WorkerBadInput(f"model {self.spec.id!r}: {reply.get('error')}")
            raise WorkerRequestError(f"model {self.spec.id!r}: {reply.get('error')}")
        return reply

    def infer(self, obs: Observation) -> np.ndarray:
        reply = self._request({"op": "infer", "obs": wire.observation_to_wire(obs)})
        self.model_ms.append(float(reply.get("model_ms", 0.0)))
        del self.model_ms[:-10_000]
        return np.asarray(reply["actions"], dtype=np.float64)

    def end_session(self, session: str) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._request({"op": "end_session", "session": session})

    def export_session(self, session: str) -> bytes:
        return bytes(self._request({"op": "export_session", "session": session}).get("data") or b"")

    def import_session(self, session: str, data: bytes) -> None:
        self._request({"op": "import_session", "session": session, "data": bytes(data)})

    def _kill(self) -> int | None:
        code = None
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            try:
                code = self._proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                code = None
        if self._sock is not None:
            self._sock.close()
        self._proc = None
        self._sock = None
        return code

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None and self._sock is not None:
            try:
                self._sock.settimeout(2.0)
                self._sock.sendall(wire.pack({"op": "shutdown", "id": next(self._ids)}))
                self._proc.wait(timeout=2.0)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self._kill()
