"""Test helper: the whole service (`run_service`, both ports) in a background thread with a
scripted catalog written to a temporary YAML file, and one ``pro`` key."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from vla_server.auth.store import KeyStore
from vla_server.config import ServiceConfig
from vla_server.serve import run_service


@dataclass(frozen=True)
class RunningService:
    port: int
    openpi_port: int
    key: str


@contextlib.contextmanager
def service_with_openpi(tmp_path: Path, models: Sequence[Mapping[str, Any]]) -> Iterator[RunningService]:
    """Runs `vla-server serve` in-process (ports 0 → free) until the block ends."""
    catalog = tmp_path / "models.yaml"
    catalog.write_text(yaml.safe_dump({"models": [dict(m) for m in models]}))
    config = ServiceConfig()
    config = replace(config, server=replace(config.server, port=0, openpi_port=0, data_dir=str(tmp_path / "data"),
                                            catalog=str(catalog), web=False))
    key = KeyStore(config.keys_db).create("lab", "pro")[1]
    ports: dict[str, int] = {}
    ready = threading.Event()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    result: list[BaseException] = []

    def on_ready(p: dict[str, int]) -> None:
        ports.update(p)
        ready.set()

    def run() -> None:
        try:
            loop.run_until_complete(run_service(config, ready=on_ready, stop=stop))
        except BaseException as exc:  # noqa: BLE001 - reported below
            result.append(exc)
            ready.set()

    thread = threading.Thread(target=run, name="vla-service", daemon=True)
    thread.start()
    try:
        if not ready.wait(30) or result:
            raise RuntimeError(f"service did not start: {result[:1]}")
        yield RunningService(ports["port"], ports["openpi_port"], key)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        alive = thread.is_alive()
        if not alive:
            loop.close()
        assert not alive, "service did not stop within 30 s"
