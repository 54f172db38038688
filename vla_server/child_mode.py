"""`vla-server serve` as another program's child (the daemon's assist, tests): a temporary API key,
the ready line to the parent, and the parent-death lifeline.

* ``--ephemeral-key TIER``: the service makes a key of that tier in its own key store — in a
  temporary data folder unless ``--data-dir`` names one — and hands it to the parent on the ready
  line. The key is revoked when the service stops (a temporary folder is removed with it); keys
  of a service that was killed stay in the store of the folder the parent chose, so a restart on
  that folder still accepts them. Nobody but the service writes its key store.
* ``--ready-fd FD``: once listening, the service writes one line (`robot_formats.service_ready`:
  ports and the key) to FD and closes it. Without it, an ephemeral key's line goes to stdout.
* ``--parent-pid PID [--parent-death-signal SIG]``: `frankateach.lifeline.ParentWatch` stops the
  service when the parent dies, whatever killed it; its model workers follow it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from frankateach.lifeline import ParentWatch
from robot_formats.service_ready import ServiceReady
from vla_server.auth.store import KeyStore

log = logging.getLogger(__name__)

EPHEMERAL_KEY_NAME = "ephemeral"


class EphemeralKey:
    """A temporary key in the service's own key store (see the module docstring).

    Args:
        tier: the key's tier (its fps and session limits).
        data_dir: the service's data folder, or None for a temporary one (removed by `close`).
    """

    def __init__(self, tier: str, data_dir: Path | None) -> None:
        self.temporary = data_dir is None
        self.data_dir = Path(tempfile.mkdtemp(prefix="vla-server-")) if data_dir is None else Path(data_dir)
        self.tier = tier
        self.key_id = ""
        self.key = ""

    def create(self, keys_db: Path) -> str:
        """Makes the key in `keys_db` (the configured store inside the data folder); returns it."""
        name = f"{EPHEMERAL_KEY_NAME}-{os.getpid()}-{time.time_ns()}"
        record, self.key = KeyStore(keys_db).create(name, self.tier)
        self.key_id = record.key_id
        self._keys_db = keys_db
        log.info("ephemeral key made", extra={"event": "ephemeral_key", "key_id": record.key_id, "tier": self.tier})
        return self.key

    def close(self) -> None:
        """Revokes the key (a temporary folder is removed instead)."""
        if self.temporary:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        elif self.key_id:
            try:
                KeyStore(self._keys_db).revoke(self.key_id)
            except Exception as exc:  # the store went away: nothing to revoke
                log.warning("could not revoke the ephemeral key %s: %s", self.key_id, exc)
        self.key = ""


def ready_writer(fd: int | None, key: str | None) -> Callable[[dict[str, int]], None]:
    """The `run_service` ready callback: writes the ready line to `fd` (stdout when None) once."""

    def ready(ports: dict[str, int]) -> None:
        line = ServiceReady(port=int(ports["port"]), openpi_port=ports.get("openpi_port"), key=key).encode()
        data = line.encode()
        if fd is None:
            os.write(1, data)
            return
        try:
            while data:
                data = data[os.write(fd, data):]
        finally:
            os.close(fd)

    return ready


def watch_parent(parent_pid: int, death_signal: int, stop: asyncio.Event) -> ParentWatch:
    """Starts the lifeline: `stop` is set when the parent dies (and the process leaves soon after)."""
    loop = asyncio.get_running_loop()

    def on_parent_exit() -> None:
        loop.call_soon_threadsafe(stop.set)

    watch = ParentWatch(parent_pid, on_parent_exit, death_signal=death_signal)
    watch.start()
    return watch
