"""The clients against the real service: `VLAStreamingClient` on `/v1/stream` (uvicorn on a free
port, real worker processes, keys from the auth store) and `OpenPIClient` on the openpi port of
``run_service``."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.vla_service import Service, running_service, scripted
from vla_client import (
    AuthError,
    ModelNotFound,
    OpenPIClient,
    RateLimitError,
    SessionRejected,
    SyncVLAStreamingClient,
    Timeout,
    VLAStreamingClient,
)
from vla_server import constants as C
from vla_server.auth.store import KeyStore
from vla_server.config import ServiceConfig
from vla_server.serve import run_service

pytestmark = pytest.mark.slow

IMG = np.full((48, 64, 3), 100, np.uint8)
STATE = {"pose": [0.5, 0.0, 0.3, 3.14, 0.0, 0.0], "velocity": [0.0] * 6}
REACH = [0.2, 0.0, -0.1, 0.0, 0.0, 0.0, 1.0]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    catalog = {"scripted-reach": scripted("scripted-reach", action=REACH)}
    with running_service(tmp_path_factory.mktemp("svc"), catalog) as svc:
        yield svc


def test_stream_client_against_the_service(service: Service) -> None:
    with SyncVLAStreamingClient(service.ws, service.keys["pro"]) as c:
        connected = c.connect("scripted-reach", target_fps=20, enable_smoothing=False)
        assert connected.model == "scripted-reach" and connected.target_fps == 20
        got = []
        for _ in range(3):
            c.send_frame(IMG, "pick up the red cube", STATE)
            got.append(c.receive_action(timeout=20))  # the first frame starts the worker
        assert [a.frame_id for a in got] == [0, 1, 2]
        assert got[-1].action.tolist() == pytest.approx(REACH) and not got[-1].smoothed
        assert 0.0 <= got[-1].safety_score <= 1.0 and got[-1].rtt_ms is not None
        stats = c.get_stats(timeout=5)
        assert stats.total_frames == 3 and stats.target_fps == 20
    assert c.state == "closed"


@pytest.mark.parametrize(
    "key, model, fps, error, code",
    [
        ("vla_nope_000000000000", "scripted-reach", 10, AuthError, C.CLOSE_BAD_KEY),
        ("pro", "no-such-model", 10, ModelNotFound, C.CLOSE_UNKNOWN_MODEL),
        ("free", "scripted-reach", 30, RateLimitError, C.CLOSE_FPS_TOO_HIGH),
    ],
)
def test_refusals_from_the_service(service: Service, key: str, model: str, fps: float, error: type, code: int) -> None:
    async def main() -> None:
        c = VLAStreamingClient(service.ws, service.keys.get(key, key))
        with pytest.raises(SessionRejected) as err:
            await c.connect(model, target_fps=fps)
        assert isinstance(err.value, error) and err.value.close_code == code

    asyncio.run(main())


def test_free_tier_allows_one_session(service: Service) -> None:
    async def main() -> None:
        a = VLAStreamingClient(service.ws, service.keys["free"])
        b = VLAStreamingClient(service.ws, service.keys["free"])
        await a.connect("scripted-reach", target_fps=5)
        with pytest.raises(RateLimitError) as err:
            await b.connect("scripted-reach", target_fps=5)
        assert err.value.close_code == C.CLOSE_TOO_MANY_SESSIONS
        await a.close()

    asyncio.run(main())


def test_openpi_client_against_the_services_openpi_port(tmp_path: Path) -> None:
    catalog = tmp_path / "models.yaml"
    catalog.write_text(yaml.safe_dump({"models": [
        {"id": "scripted-chunk", "backend": "scripted", "params": {"action": REACH, "horizon": 5}},
    ]}))
    config = ServiceConfig()
    config = replace(config, server=replace(config.server, port=0, openpi_port=0, data_dir=str(tmp_path / "data"),
                                            catalog=str(catalog), web=False))
    key = KeyStore(config.keys_db).create("lab", "pro")[1]
    ports: dict[str, int] = {}
    ready, stop = threading.Event(), None
    loop = asyncio.new_event_loop()

    def on_ready(p: dict[str, int]) -> None:
        ports.update(p)
        ready.set()

    async def serve() -> int:
        nonlocal stop
        stop = asyncio.Event()
        return await run_service(config, ready=on_ready, stop=stop)

    thread = threading.Thread(target=lambda: loop.run_until_complete(serve()), daemon=True)
    thread.start()
    try:
        assert ready.wait(30), "service did not start"

        async def main() -> None:
            async with OpenPIClient(f"ws://127.0.0.1:{ports['openpi_port']}", key) as c:
                await c.connect("scripted-chunk", target_fps=10)
                assert c.metadata["model"] == "scripted-chunk" and c.metadata["action_dim"] == 7
                # the first chunk may arrive wholly stale (the worker's cold start): keep streaming
                a = None
                for _ in range(200):
                    await c.send_frame(IMG, "pick up the red cube", STATE)
                    with contextlib.suppress(Timeout):
                        a = await c.receive_action(timeout=0.1, latest=True)
                        break
                assert a is not None, c.client_stats()
                assert a.action.tolist() == pytest.approx(REACH) and a.latency_ms < 500
            with pytest.raises(AuthError):
                await OpenPIClient(f"ws://127.0.0.1:{ports['openpi_port']}", "vla_wrong_key").connect("scripted-chunk")

        asyncio.run(main())
    finally:
        if stop is not None:
            loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        assert not thread.is_alive(), "service did not stop"
        loop.close()
