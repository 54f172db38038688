"""Test helpers for the inference service: a real uvicorn server on a free 127.0.0.1 port in a
background thread, scripted-model catalogs, keys, and a JPEG frame factory."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import uvicorn

from robot_formats.image import encode_jpeg_data_url
from vla_server.app import create_app
from vla_server.auth.store import KeyStore
from vla_server.config import ServiceConfig
from vla_server.models import ModelSpec
from vla_server.registry import RegistryConfig
from vla_server.serve import bind
from vla_server.stream.config import StreamConfig

HOST = "127.0.0.1"


def scripted(mid: str, **params: Any) -> ModelSpec:
    """A scripted model spec."""
    latency = params.pop("latency_ms", 0.0)
    return ModelSpec(id=mid, backend="scripted", params=params, latency_ms=latency)


def frame_url(width: int = 64, height: int = 48, seed: int = 0) -> str:
    """A JPEG data URL of a random image."""
    rng = np.random.default_rng(seed)
    return encode_jpeg_data_url(rng.integers(0, 255, (height, width, 3), dtype=np.uint8))


def frame_msg(image: str | None = None, instruction: str = "pick up the red cube", **extra: Any) -> str:
    msg: dict[str, Any] = {"type": "frame", "image": image or frame_url(), "instruction": instruction}
    msg.update(extra)
    return json.dumps(msg)


def auth_msg(key: str, model: str, fps: float = 10, **extra: Any) -> str:
    msg: dict[str, Any] = {"type": "auth", "api_key": key, "model": model, "robot_type": "franka_panda",
                           "target_fps": fps, "enable_smoothing": False, "enable_safety": True}
    msg.update(extra)
    return json.dumps(msg)


@dataclass
class Service:
    """A running service."""

    port: int
    app: Any
    keystore: KeyStore
    keys: dict[str, str]  # tier name or "admin" -> plaintext key

    @property
    def http(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://{HOST}:{self.port}/v1/stream"

    def get(self, path: str, key: str | None = None, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.get(self.http + path, headers=headers, timeout=30.0, **kw)

    def post(self, path: str, key: str | None = None, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.post(self.http + path, headers=headers, timeout=60.0, **kw)

    def model(self, mid: str) -> dict[str, Any]:
        return self.get(f"/v1/models/{mid}", self.keys["admin"]).json()


@contextlib.contextmanager
def running_service(
    tmp_path: Path,
    catalog: Mapping[str, ModelSpec],
    registry: RegistryConfig | None = None,
    stream: StreamConfig | None = None,
) -> Iterator[Service]:
    """Starts the service (uvicorn in a thread, real workers) and stops it on exit."""
    config = ServiceConfig()
    config = replace(
        config,
        server=replace(config.server, port=0, openpi_port=None, data_dir=str(tmp_path / "data"), web=False),
        registry=registry or RegistryConfig(health_interval_s=0.5),
        stream=stream or StreamConfig(),
    )
    keystore = KeyStore(config.keys_db)
    keys = {tier: keystore.create(f"k-{tier}", tier)[1] for tier in ("free", "pro", "enterprise")}
    keys["admin"] = keystore.create("k-admin", "enterprise", admin=True)[1]
    app = create_app(config, catalog=catalog, keystore=keystore, web=False, arena=False)
    sock = bind(HOST, 0)
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, ws="websockets-sansio",
                                           ws_max_size=config.transport_max_bytes, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("service did not start")
        time.sleep(0.01)
    try:
        yield Service(sock.getsockname()[1], app, keystore, keys)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
        assert not thread.is_alive(), "service thread did not stop"
