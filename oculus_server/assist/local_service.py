"""A local inference service for ``--debug --assist MODEL`` without ``--assist-url``.

`LocalService.start` makes a temporary data folder, creates a temporary API key in its key
database (`vla_server.auth.store.KeyStore`, the file the service reads), picks a free loopback
port and starts `oculus_server.assist.service_child` on it, waiting until it listens. The child
never outlives the daemon (it is given our pid and exits within 1 s of our death, whatever kills
us: `frankateach.lifeline`); `stop` ends it (SIGTERM, then SIGKILL) and removes the folder.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from frankateach.port_holder import PortInUseError, check_ports_free
from oculus_server.assist.service_child import READY_LINE
from oculus_server.child_process import lifeline_args, log_tail, stop_on_interrupt, terminate
from oculus_server.errors import OculusServerError

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
KEY_NAME = "oculus-server-assist"


def free_port(host: str = HOST) -> int:
    """A TCP port nothing listens on now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class LocalService:
    """The inference service as a child process on loopback, with a temporary key.

    Args:
        model: the model the service loads at start (must be in its catalog).
        port: listening port (None: a free one).
        tier: tier of the temporary key (its fps and session limits).
        log_path: the child's log.
        data_dir: the service's data folder (None: a temporary one, removed by `stop`).
        catalog: the service's model catalog YAML (None: the built-in one).
    """

    def __init__(
        self,
        model: str,
        port: int | None = None,
        tier: str = "pro",
        log_path: Path | None = None,
        data_dir: Path | None = None,
        catalog: str | None = None,
    ) -> None:
        self.model = model
        self.catalog = catalog
        self.port = port
        self.tier = tier
        self.log_path = log_path or Path("logs") / "vla-service.log"
        self._own_dir = data_dir is None
        self.data_dir = data_dir
        self.key = ""
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """``ws://127.0.0.1:PORT/v1/stream``."""
        return f"ws://{HOST}:{self.port}/v1/stream"

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "oculus_server.assist.service_child",
            *lifeline_args(),
            "--port", str(self.port),
            "--data-dir", str(self.data_dir),
            "--model", self.model,
            *(["--catalog", str(Path(self.catalog).resolve())] if self.catalog else []),
        ]

    def start(self, timeout_s: float = 90.0) -> None:
        """`launch` then `wait_ready`."""
        self.launch()
        self.wait_ready(timeout_s)

    def launch(self) -> None:
        """Creates the key and starts the service (returns at once; `wait_ready` waits).

        Raises:
            OculusServerError: the port is taken.
        """
        from vla_server.auth.store import KeyStore
        from vla_server.config import ServiceConfig

        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix="oculus-assist-"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        keys_db = self.data_dir / ServiceConfig().keys_db.name
        if not self.key:
            self.key = KeyStore(keys_db).create(f"{KEY_NAME}-{os.getpid()}-{int(time.time())}", self.tier)[1]
        if self.port is None:
            self.port = free_port()
        try:
            check_ports_free(HOST, {"assist inference service": self.port})
        except PortInUseError as exc:
            raise OculusServerError(f"cannot start the inference service: {exc}") from None
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as logf:
            self.proc = subprocess.Popen(
                self.command(), stdout=subprocess.PIPE, stderr=logf, stdin=subprocess.DEVNULL,
                env=dict(os.environ, PYTHONUNBUFFERED="1"), start_new_session=True,
            )

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        """Waits until the launched service listens.

        Raises:
            OculusServerError: the service exited (e.g. an unknown model) or did not listen within
                `timeout_s` (with the tail of its log).
            SystemExit: 130 when interrupted (Ctrl-C) while waiting (the service is stopped).
        """
        assert self.proc is not None, "launch() first"
        deadline = time.monotonic() + timeout_s
        with stop_on_interrupt(self.stop, "the inference service"):
            self._wait_ready(deadline, timeout_s)
        log.info("inference service started for assist (pid %d, %s, model %s, log %s)",
                 self.proc.pid, self.url, self.model, self.log_path)

    def _wait_ready(self, deadline: float, timeout_s: float) -> None:
        proc = self.proc
        assert proc is not None and proc.stdout is not None
        os.set_blocking(proc.stdout.fileno(), False)
        buf = b""
        while time.monotonic() < deadline:
            chunk = proc.stdout.read() or b""
            buf += chunk
            if READY_LINE.encode() in buf:
                proc.stdout.close()
                return
            if proc.poll() is not None:
                raise OculusServerError(f"the inference service exited with code {proc.returncode} during start-up; "
                                        f"see {self.log_path}:\n{self.tail()}")
            time.sleep(0.05)
        raise OculusServerError(f"the inference service did not listen within {timeout_s:.0f} s; "
                                f"see {self.log_path}:\n{self.tail()}")

    def tail(self, n: int = 20) -> str:
        """The last `n` lines of the service's log."""
        return log_tail(self.log_path, n)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 5.0) -> None:
        """SIGTERM, SIGKILL if it does not exit within `timeout_s`; removes a temporary folder."""
        proc = self.proc
        terminate(proc, timeout_s)
        if proc is not None and proc.stdout is not None and not proc.stdout.closed:
            proc.stdout.close()
        if self._own_dir and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir, self.key = None, ""
