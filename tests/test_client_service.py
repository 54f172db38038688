"""The clients against the real service: `VLAStreamingClient` on `/v1/stream` (uvicorn on a free
port, real worker processes, keys from the auth store) and `OpenPIClient` on the openpi port of
``run_service``."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from robot_formats.stream import limits as L
from tests.openpi_service import RunningService, service_with_openpi
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
        got, ids = [], []
        next_send = time.monotonic()
        for _ in range(3):
            # on the 20 Hz grid: faster frames are dropped by the gate (no action comes), and a
            # warm worker answers in ~1 ms, so the cold start cannot be relied on to space them
            time.sleep(max(0.0, next_send - time.monotonic()))
            next_send = time.monotonic() + 1 / 20
            ids.append(c.send_frame(IMG, "pick up the red cube", STATE))
            got.append(c.receive_action(timeout=20))  # the first frame may start the worker
        assert [a.frame_id for a in got] == ids == [0, 1, 2]  # send_frame returns the server's id
        assert {a.session_number for a in got} == {c.session_number} == {1}
        assert got[-1].action.tolist() == pytest.approx(REACH) and not got[-1].smoothed
        assert 0.0 <= got[-1].safety_score <= 1.0 and got[-1].rtt_ms is not None
        stats = c.get_stats(timeout=5)
        assert stats.total_frames == 3 and stats.target_fps == 20
    assert c.state == "closed"


@pytest.mark.parametrize(
    "key, model, fps, error, code",
    [
        ("vla_nope_000000000000", "scripted-reach", 10, AuthError, L.CLOSE_BAD_KEY),
        ("pro", "no-such-model", 10, ModelNotFound, L.CLOSE_UNKNOWN_MODEL),
        ("free", "scripted-reach", 30, RateLimitError, L.CLOSE_FPS_TOO_HIGH),
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
        assert err.value.close_code == L.CLOSE_TOO_MANY_SESSIONS
        await a.close()

    asyncio.run(main())


def test_openpi_client_against_the_services_openpi_port(tmp_path: Path) -> None:
    models = [{"id": "scripted-chunk", "backend": "scripted", "params": {"action": REACH, "horizon": 5}}]

    async def main(svc: RunningService) -> None:
        url = f"ws://127.0.0.1:{svc.openpi_port}"
        async with OpenPIClient(url, svc.key) as c:
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
            await OpenPIClient(url, "vla_wrong_key").connect("scripted-chunk")

    with service_with_openpi(tmp_path, models) as svc:
        asyncio.run(main(svc))


def test_frame_ids_returned_by_send_frame_name_the_actions_under_load(service: Service) -> None:
    """Frames sent faster than the fps gate admits (some dropped, some queued): every action
    carries an id `send_frame` returned, in order, and the stats count every valid frame."""
    with SyncVLAStreamingClient(service.ws, service.keys["pro"]) as c:
        c.connect("scripted-reach", target_fps=20, enable_smoothing=False)
        ids = [c.send_frame(IMG, "pick up the red cube", STATE) for _ in range(40)]
        assert ids == list(range(40))
        seen = []
        with contextlib.suppress(Timeout):
            while True:
                seen.append(c.receive_action(timeout=3))
        assert seen and all(a.frame_id in ids and a.session_number == c.session_number for a in seen)
        assert [a.frame_id for a in seen] == sorted({a.frame_id for a in seen})
        assert c.get_stats(timeout=5).total_frames == 40
