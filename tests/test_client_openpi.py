"""`OpenPIClient` against the fake openpi server and against our own openpi endpoint, on loopback:
metadata, chunks scheduled on the clock with the stale prefix skipped, newest-frame-wins, errors
(text frame + 1011) reported then reconnected, auth, the DROID adapter, link loss."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from robot_formats.openpi_request import parse_request, reply_from_chunk
from tests.fakes.fake_openpi_server import FakeOpenPIServer
from vla_client import (
    AuthError,
    Backoff,
    ConnectionLost,
    NotConnected,
    ServerError,
    SyncVLAStreamingClient,
    Timeout,
)
from vla_client.openpi_adapters import DroidAdapter
from vla_client.openpi_client import OpenPIClient
from vla_server.openpi.server import (
    OpenPIServerConfig,
    create_openpi_app,
    serve_in_thread,
)

IMG = np.full((48, 64, 3), 90, np.uint8)
STATE = {"pose": [0.5, 0.0, 0.3, 3.14, 0.0, 0.0], "gripper": -1.0}


def chunk_policy(h: int = 10) -> Any:
    """Row i of the reply to request n: every motion value n/10 + i/1000 (tells rows apart)."""
    calls = {"n": 0}

    def policy(obs: dict[str, Any]) -> dict[str, Any]:
        n = calls["n"]
        calls["n"] += 1
        rows = n / 10.0 + np.arange(h)[:, None] / 1000.0 + np.zeros((h, 7))
        rows[:, 6] = 1.0
        return {"actions": rows.astype(np.float32)}

    return policy


@pytest.fixture
def fake() -> Iterator[FakeOpenPIServer]:
    with FakeOpenPIServer(policy=chunk_policy(), metadata={"policy": "fake", "action_horizon": 10}) as srv:
        yield srv


def _client(port: int, **kw: Any) -> OpenPIClient:
    kw.setdefault("backoff", Backoff(0.01, 0.05))
    return OpenPIClient(f"ws://127.0.0.1:{port}", **kw)


async def _eventually(pred: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


def test_chunks_are_played_on_the_action_clock(fake: FakeOpenPIServer) -> None:
    async def main() -> None:
        async with _client(fake.port) as c:
            connected = await c.connect("pi0-fake", target_fps=20)
            assert connected.model == "pi0-fake" and c.metadata == {"policy": "fake", "action_horizon": 10}
            await c.send_frame(IMG, "pick up the red cube", STATE)
            first = await c.receive_action(timeout=2)
            t0 = time.monotonic()
            rows = [first] + [await c.receive_action(timeout=2) for _ in range(4)]
            elapsed = time.monotonic() - t0
            assert all(r.frame_id == 0 and r.safety_score == 1.0 for r in rows)
            assert 0.15 < elapsed < 0.5  # 4 more actions paced at 1/20 s
            steps = [round(r.action[0] * 1000) for r in rows]
            assert steps == sorted(steps) and steps[-1] - steps[0] >= 3  # walks down the chunk
            assert rows[0].latency_ms >= 0 and rows[0].action[6] == 1.0
            stats = await c.get_stats()
            assert stats.total_frames == 1 and stats.target_fps == 20
            assert c.client_stats().extra["chunks_received"] == 1

    asyncio.run(main())
    assert fake.requests[0]["prompt"] == "pick up the red cube"
    assert np.array_equal(fake.requests[0]["observation/image"], IMG)
    assert fake.requests[0]["observation/state"].tolist() == [0.5, 0.0, 0.3, 3.14, 0.0, 0.0, -1.0]


def test_stale_prefix_skipped_with_a_slow_server() -> None:
    async def main(srv: FakeOpenPIServer) -> None:
        async with _client(srv.port) as c:
            await c.connect("m", target_fps=10)  # dt = 0.1 s; the server takes 0.25 s
            await c.send_frame(IMG, "x")
            a = await c.receive_action(timeout=2, latest=True)
            assert a.latency_ms >= 250
            assert round(a.action[0] * 1000) >= 2  # rows 0 and 1 were past on arrival
            assert c.client_stats().extra["rows_skipped_stale"] >= 2

    with FakeOpenPIServer(policy=chunk_policy(), latency_s=0.25) as srv:
        asyncio.run(main(srv))


def test_newest_frame_wins_while_a_request_is_in_flight() -> None:
    async def main(srv: FakeOpenPIServer) -> None:
        async with _client(srv.port) as c:
            await c.connect("m", target_fps=10)
            await c.send_frame(IMG, "frame 0")
            await _eventually(lambda: len(srv.requests) == 1)  # in flight (the server takes 0.15 s)
            for i in range(1, 4):
                await c.send_frame(IMG, f"frame {i}")
            await _eventually(lambda: c.client_stats().extra["chunks_received"] == 2)
            assert c.client_stats().frames_dropped == 2
            stats = await c.get_stats()
            assert stats.total_frames == 4 and stats.dropped_frames == 2 and stats.drop_rate_percent == 50.0

    with FakeOpenPIServer(policy=chunk_policy(), latency_s=0.15) as srv:
        asyncio.run(main(srv))
        assert [r["prompt"] for r in srv.requests] == ["frame 0", "frame 3"]


def test_overlapping_chunks_are_blended(fake: FakeOpenPIServer) -> None:
    async def main() -> None:
        async with _client(fake.port, ensemble_k=0.0) as c:
            await c.connect("m", target_fps=10, enable_smoothing=True)
            await c.send_frame(IMG, "x")
            await _eventually(lambda: c.client_stats().extra["chunks_received"] == 1)
            await c.send_frame(IMG, "x")
            await _eventually(lambda: c.client_stats().extra["chunks_received"] == 2)
            a = await c.receive_action(timeout=1, latest=True)
            assert a.smoothed and a.frame_id == 1
            assert 0.0 < a.action[0] < 0.1 + 0.01  # between chunk 0 (≈0) and chunk 1 (≈0.1)

    asyncio.run(main())


def test_latest_scheme_without_smoothing(fake: FakeOpenPIServer) -> None:
    async def main() -> None:
        async with _client(fake.port) as c:
            await c.connect("m", target_fps=10, enable_smoothing=False)
            for _ in range(2):
                await c.send_frame(IMG, "x")
                n = c.client_stats().extra["chunks_received"]
                await _eventually(lambda n=n: c.client_stats().extra["chunks_received"] == n + 1)
            a = await c.receive_action(timeout=1, latest=True)
            assert not a.smoothed and a.action[0] == pytest.approx(0.1, abs=0.01)

    asyncio.run(main())


def test_server_error_is_reported_once_and_the_client_reconnects(fake: FakeOpenPIServer) -> None:
    async def main() -> None:
        async with _client(fake.port) as c:
            await c.connect("m")
            fake.fail_next("CUDA out of memory")
            await c.send_frame(IMG, "x")
            with pytest.raises(ServerError, match="CUDA out of memory"):
                await c.receive_action(timeout=2)
            await _eventually(lambda: c.client_stats().reconnects == 1 and c.state == "connected")
            await c.send_frame(IMG, "x")
            assert (await c.receive_action(timeout=2)).frame_id == 1

    asyncio.run(main())
    assert fake.connections == 2


def test_wrong_width_with_the_native_adapter_names_the_fix() -> None:
    async def main(srv: FakeOpenPIServer) -> None:
        async with _client(srv.port) as c:
            await c.connect("m")
            await c.send_frame(IMG, "x")
            with pytest.raises(ServerError, match="DroidAdapter"):
                await c.receive_action(timeout=2)
            assert c.state == "connected"  # a bad reply is not a broken connection

    with FakeOpenPIServer() as srv:  # default: DROID-shaped (10, 8)
        asyncio.run(main(srv))


def test_api_key() -> None:
    async def main(srv: FakeOpenPIServer) -> None:
        with pytest.raises(AuthError) as err:
            await _client(srv.port, api_key="wrong").connect("m")
        assert err.value.close_code == 401
        c = _client(srv.port, api_key="k1")
        await c.connect("m")
        await c.close()

    with FakeOpenPIServer(api_key="k1") as srv:
        asyncio.run(main(srv))


def test_link_loss_plays_out_the_chunk_then_raises(fake: FakeOpenPIServer) -> None:
    async def main() -> None:
        async with _client(fake.port, reconnect=False) as c:
            await c.connect("m", target_fps=20)  # 10 rows = 0.5 s of actions
            await c.send_frame(IMG, "x")
            await c.receive_action(timeout=2)
            await asyncio.to_thread(fake.close_connections)
            await _eventually(lambda: c.state == "closed")
            with pytest.raises(ConnectionLost):
                await c.send_frame(IMG, "x")
            t = time.monotonic()
            with pytest.raises(ConnectionLost):
                while True:
                    await c.receive_action(timeout=1)
            assert time.monotonic() - t < 0.6  # the rest of the chunk, then the loss

    asyncio.run(main())


def test_receive_times_out_and_calls_need_connect(fake: FakeOpenPIServer) -> None:
    async def main() -> None:
        c = _client(fake.port)
        with pytest.raises(NotConnected):
            await c.receive_action()
        await c.connect("m")
        with pytest.raises(Timeout):
            await c.receive_action(timeout=0.1)
        await c.close()
        with pytest.raises(NotConnected):
            await c.send_frame(IMG, "x")

    asyncio.run(main())


def test_against_our_openpi_endpoint() -> None:
    seen: list[tuple[str, Any]] = []

    async def infer(model_id: str, obs: dict[str, Any]) -> dict[str, Any]:
        o = parse_request(obs)
        seen.append((model_id, o))
        assert o.robot_state is not None
        x = o.robot_state.pose[0]
        return reply_from_chunk(np.tile([x, 0, 0, 0, 0, 0, 1.0], (5, 1)))

    app = create_openpi_app(
        infer, {"served_by": "vla-server"}, lambda k: k == "key", OpenPIServerConfig(model="default")
    )
    with serve_in_thread(app) as port, SyncVLAStreamingClient(client=_client(port, api_key="key")) as c:
        c.connect("color-reach", target_fps=10)
        c.send_frame(IMG, "pick up the red cube", STATE)
        a = c.receive_action(timeout=2, latest=True)
        assert a.action.tolist() == pytest.approx([0.5, 0, 0, 0, 0, 0, 1.0])
        assert c.client_stats().extra["metadata"] == {"served_by": "vla-server"}
    model_id, obs = seen[0]
    assert model_id == "color-reach" and obs.instruction == "pick up the red cube"
    assert obs.image.shape == (48, 64, 3) and obs.robot_state.gripper == -1.0


def test_droid_adapter_against_a_droid_shaped_server() -> None:
    def droid(obs: dict[str, Any]) -> dict[str, Any]:
        assert obs["observation/exterior_image_1_left"].shape == (224, 224, 3)
        assert obs["observation/joint_position"].shape == (7,)
        rows = np.zeros((8, 8))
        rows[:, 0] = 0.5  # turn joint 1
        rows[:, 7] = 1.0  # close
        return {"actions": rows}

    async def main(srv: FakeOpenPIServer) -> None:
        adapter = DroidAdapter()
        async with _client(srv.port, adapter=adapter) as c:
            await c.connect("pi05_droid", target_fps=10)
            assert c.action_dt_s == pytest.approx(1 / 15)
            await c.send_frame(IMG, "pick", STATE)
            a = await c.receive_action(timeout=3, latest=True)
            assert a.action[6] == 1.0 and np.linalg.norm(a.action[:3]) > 0.1  # joint 1 moves the TCP
            assert np.all(np.abs(a.action) <= 1.0)

    with FakeOpenPIServer(policy=droid) as srv:
        asyncio.run(main(srv))


@pytest.mark.parametrize(
    "url, kind, ws_url",
    [
        ("ws://h:8000/v1/stream", "VLAStreamingClient", "ws://h:8000/v1/stream"),
        ("openpi://h:8001", "OpenPIClient", "ws://h:8001"),
        ("openpi+wss://h:8001", "OpenPIClient", "wss://h:8001"),
    ],
)
def test_make_client_picks_the_wire_format(url: str, kind: str, ws_url: str) -> None:
    from vla_client import make_client

    c = make_client(url, "k")
    assert type(c).__name__ == kind and c.url == ws_url  # type: ignore[attr-defined]


@pytest.mark.parametrize("url", ["http://h:1", "openpi://h:1?adapter=act", "openpi://h:1?x=1"])
def test_make_client_refuses(url: str) -> None:
    from vla_client import make_client

    with pytest.raises(ValueError):
        make_client(url)
