"""A local inference service for ``--debug --assist MODEL`` without ``--assist-url``.

`LocalService.start` runs the service's own command line as a child, exactly as the daemon runs
the simulator (`oculus_server.sim_process`)::

    python -m vla_server.cli serve --no-config --host 127.0.0.1 --port 0 --no-openpi --no-web
        --no-arena --pin MODEL --data-dir TMP --ephemeral-key TIER --ready-fd FD --parent-pid PID

The service makes a temporary API key in its own key store (in the temporary folder made here)
and writes its ports and that key on one line to an inherited pipe (`robot_formats.service_ready`);
the daemon never imports the service and never touches its key store. The child never outlives
the daemon (it is given our pid and exits within 1 s of our death, whatever kills us:
`frankateach.lifeline`); `stop` ends it (SIGTERM, then SIGKILL) and removes the folder.
"""

from __future__ import annotations

import logging
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from frankateach.lifeline import stop_child
from frankateach.port_holder import PortInUseError, check_ports_free
from oculus_server.child_process import lifeline_args, log_tail, stop_on_interrupt
from oculus_server.errors import OculusServerError
from robot_formats.service_ready import MAX_READY_LINE_BYTES, ReadyLineError, parse_ready_line
from robot_formats.stream.limits import STREAM_PATH

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
SERVICE_MODULE = "vla_server.cli"  # the `vla-server` command line, run with this interpreter


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
        self._ready_r: int | None = None

    @property
    def url(self) -> str:
        """``ws://127.0.0.1:PORT/v1/stream``."""
        return f"ws://{HOST}:{self.port}{STREAM_PATH}"

    def command(self, ready_fd: int) -> list[str]:
        """The service's command line; its ready line comes on `ready_fd` (inherited)."""
        return [
            sys.executable, "-m", SERVICE_MODULE, "serve",
            "--no-config",
            "--host", HOST,
            "--port", str(self.port or 0),
            "--no-openpi", "--no-web", "--no-arena",
            "--pin", self.model,
            "--data-dir", str(self.data_dir),
            "--ephemeral-key", self.tier,
            "--ready-fd", str(ready_fd),
            "--log-level", "warning", "--log-format", "text",
            *lifeline_args(),
            *(["--catalog", str(Path(self.catalog).resolve())] if self.catalog else []),
        ]

    def start(self, timeout_s: float = 90.0) -> None:
        """`launch` then `wait_ready`."""
        self.launch()
        self.wait_ready(timeout_s)

    def launch(self) -> None:
        """Starts the service (returns at once; `wait_ready` waits for its ready line).

        Raises:
            OculusServerError: the port is taken.
        """
        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix="oculus-assist-"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.port is not None:
            try:
                check_ports_free(HOST, {"assist inference service": self.port})
            except PortInUseError as exc:
                raise OculusServerError(f"cannot start the inference service: {exc}") from None
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        read_end, write_end = os.pipe()
        try:
            with open(self.log_path, "wb") as logf:
                self.proc = subprocess.Popen(
                    self.command(write_end), stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    env=dict(os.environ, PYTHONUNBUFFERED="1"), start_new_session=True, pass_fds=(write_end,),
                )
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)  # the child holds its copy: EOF here when it exits
        self._ready_r = read_end

    def wait_ready(self, timeout_s: float = 90.0, check: Callable[[], None] | None = None) -> None:
        """Waits for the launched service's ready line: its port and the temporary key.

        Raises:
            OculusServerError: the service exited (e.g. an unknown model) or did not listen within
                `timeout_s` (with the tail of its log), or its ready line was malformed.
            SystemExit: 130 when interrupted (Ctrl-C) while waiting (the service is stopped).

        `check` is called every poll (0.1 s); what it raises stops the service likewise.
        """
        assert self.proc is not None and self._ready_r is not None, "launch() first"
        deadline = time.monotonic() + timeout_s
        with stop_on_interrupt(self.stop, "the inference service"):
            self._wait_ready(deadline, timeout_s, check)
        log.info("inference service started for assist (pid %d, %s, model %s, log %s)",
                 self.proc.pid, self.url, self.model, self.log_path)

    def _wait_ready(self, deadline: float, timeout_s: float, check: Callable[[], None] | None) -> None:
        proc, fd = self.proc, self._ready_r
        assert proc is not None and fd is not None
        buf = b""
        try:
            while b"\n" not in buf and len(buf) <= MAX_READY_LINE_BYTES:
                if check is not None:
                    check()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise OculusServerError(f"the inference service did not listen within {timeout_s:.0f} s; "
                                            f"see {self.log_path}:\n{self.tail()}")
                ready, _, _ = select.select([fd], [], [], min(left, 0.1))
                chunk = os.read(fd, 4096) if ready else None
                if chunk == b"":  # EOF: the service exited (or closed the fd) before it was ready
                    proc.wait(timeout=min(5.0, max(0.1, deadline - time.monotonic())))
                    raise OculusServerError(f"the inference service exited with code {proc.returncode} during "
                                            f"start-up; see {self.log_path}:\n{self.tail()}")
                buf += chunk or b""
            line = buf.split(b"\n", 1)[0]
            try:
                ready_line = parse_ready_line(line)
            except ReadyLineError as exc:
                raise OculusServerError(f"the inference service's ready line: {exc}") from None
        finally:
            os.close(fd)
            self._ready_r = None
        if not ready_line.key:
            raise OculusServerError("the inference service's ready line carries no key (expected --ephemeral-key)")
        self.port, self.key = ready_line.port, ready_line.key

    def tail(self, n: int = 20) -> str:
        """The last `n` lines of the service's log."""
        return log_tail(self.log_path, n)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 5.0) -> None:
        """SIGTERM, SIGKILL if it does not exit within `timeout_s`; removes a temporary folder."""
        stop_child(self.proc, timeout_s)
        if self._ready_r is not None:
            os.close(self._ready_r)
            self._ready_r = None
        if self._own_dir and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir, self.key = None, ""
