"""Test helper: ``vla-server serve`` as users run it — a real process on free 127.0.0.1 ports,
its stderr collected line by line, stopped with SIGTERM — plus keys made with the real CLI and a
minimal openpi-protocol client (websockets + our msgpack-numpy codec, as openpi-client does)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from websockets.sync.client import ClientConnection, connect

from robot_formats.openpi_codec import packb, unpackb

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class ServeProcess:
    """A running ``vla-server serve``."""

    proc: subprocess.Popen[str]
    data_dir: Path
    port: int
    openpi_port: int | None
    lines: list[str] = field(default_factory=list)

    @property
    def http(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://{HOST}:{self.port}/v1/stream"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Runs ``vla-server <args> --data-dir <ours>`` (keys commands) as a separate process."""
        return subprocess.run([sys.executable, "-m", "vla_server.cli", *args[:1], "--data-dir", str(self.data_dir),
                               *args[1:]], capture_output=True, text=True, timeout=60, check=True, cwd=ROOT)

    def new_key(self, name: str, tier: str, admin: bool = False) -> str:
        out = self.cli("keys", "create", "--tier", tier, "--name", name, *(["--admin"] if admin else []))
        return out.stdout.strip()

    def log_text(self) -> str:
        return "".join(self.lines)


def status_kib(pid: int, field_name: str) -> int:
    """A ``VmRSS`` / ``VmHWM`` (peak) figure of /proc/<pid>/status, KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise KeyError(field_name)


def write_catalog(path: Path, models: str) -> Path:
    path.write_text("models:\n" + models)
    return path


@contextlib.contextmanager
def serve_process(tmp_path: Path, catalog: Path, *extra: str, openpi: bool = True,
                  log_level: str = "info", start_timeout_s: float = 90.0) -> Iterator[ServeProcess]:
    """Starts ``python -m vla_server.cli serve`` on free ports; SIGTERM and wait on exit."""
    data = tmp_path / "data"
    args = [sys.executable, "-m", "vla_server.cli", "serve", "--host", HOST, "--port", "0", "--data-dir", str(data),
            "--catalog", str(catalog), "--log-level", log_level, *extra]
    args += ["--openpi-port", "0"] if openpi else ["--no-openpi"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            text=True)
    lines: list[str] = []
    ports: list[tuple[int, int | None]] = []

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if not ports and '"event":"listening"' in line:
                rec = json.loads(line)
                ports.append((rec["port"], rec["openpi_port"]))

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    deadline = time.monotonic() + start_timeout_s
    try:
        while not ports:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"vla-server serve did not start (exit {proc.poll()}):\n{''.join(lines)[-3000:]}")
            time.sleep(0.05)
        yield ServeProcess(proc, data, ports[0][0], ports[0][1], lines)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        reader.join(timeout=10)


SCRIPTED_CATALOG = "  - {id: arm, backend: scripted, params: {horizon: 2}}\n"


@contextlib.contextmanager
def scripted_service(tmp_path: Path, *extra: str, openpi: bool = True,
                     log_level: str = "info") -> Iterator[ServeProcess]:
    """`serve_process` with a one-model catalog: ``arm``, a scripted (H=2) policy."""
    catalog = write_catalog(tmp_path / "models.yaml", SCRIPTED_CATALOG)
    with serve_process(tmp_path, catalog, *extra, openpi=openpi, log_level=log_level) as svc:
        yield svc


def openpi_connect(port: int, key: str | None, timeout_s: float = 10.0, query: str = "") -> tuple[ClientConnection,
                                                                                                  dict[str, Any]]:
    """Opens an openpi connection as openpi-client does; returns (connection, metadata)."""
    headers = {"Authorization": f"Api-Key {key}"} if key else None
    ws = connect(f"ws://{HOST}:{port}/{query}", additional_headers=headers, open_timeout=timeout_s,
                 compression=None, max_size=None)
    return ws, unpackb(ws.recv(timeout=timeout_s))


def openpi_infer(ws: ClientConnection, obs: dict[str, Any], timeout_s: float = 30.0) -> dict[str, Any]:
    """One request; raises RuntimeError with the server's text as openpi-client does."""
    ws.send(packb(obs))
    reply = ws.recv(timeout=timeout_s)
    if isinstance(reply, str):
        raise RuntimeError(f"Error in inference server:\n{reply}")
    return unpackb(reply)


def droid_obs(width: int = 64, height: int = 48, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {"observation/image": rng.integers(0, 255, (height, width, 3), dtype=np.uint8),
            "observation/state": np.zeros(7), "prompt": "pick up the red cube"}
