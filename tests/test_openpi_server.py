"""The openpi-protocol endpoint under uvicorn on a free loopback port, spoken to the way openpi's
``WebsocketClientPolicy`` speaks (``websockets.sync.client``, no compression, ``Api-Key`` header)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import websockets
from websockets.sync.client import ClientConnection, connect

from robot_formats.openpi_codec import packb, unpackb
from vla_server.openpi.server import (
    OpenPIServerConfig,
    create_openpi_app,
    current_session,
    parse_api_key,
    serve_in_thread,
)

KEY = "vla_test_key_123"


class Model:
    """A recording stand-in for the service's inference path (not the thing under test)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any], str]] = []
        self.ended: list[tuple[str, str]] = []
        self.mode = "ok"

    async def infer(self, model_id: str, obs: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((model_id, obs, current_session.get()))
        if self.mode == "raise":
            raise RuntimeError("weights on fire")
        if self.mode == "slow":
            await asyncio.sleep(5)
        if self.mode == "nan":
            return {"actions": np.full((4, 7), np.nan)}
        if self.mode == "1d":
            return {"actions": np.zeros(7)}
        return {"actions": np.full((4, 7), float(len(self.calls)), np.float32), "note": "hi"}

    def end(self, model_id: str, session: str) -> None:
        self.ended.append((model_id, session))


@pytest.fixture
def model() -> Model:
    return Model()


@pytest.fixture
def port(model: Model) -> Iterator[int]:
    async def check(key: str | None) -> bool:
        await asyncio.sleep(0)
        return key == KEY

    app = create_openpi_app(
        model.infer,
        lambda m: {"model": m, "action_horizon": 4},
        check,
        OpenPIServerConfig(model="color-reach", infer_timeout_s=0.5, max_message_bytes=256 * 1024),
        end_session=model.end,
    )
    with serve_in_thread(app) as p:
        yield p


def _connect(port: int, key: str | None = KEY, query: str = "") -> ClientConnection:
    headers = {"Authorization": f"Api-Key {key}"} if key else None
    return connect(
        f"ws://127.0.0.1:{port}{query}", compression=None, max_size=None, additional_headers=headers, open_timeout=5
    )


def _obs() -> dict[str, Any]:
    return {
        "observation/exterior_image_1_left": np.zeros((224, 224, 3), np.uint8),
        "observation/joint_position": np.arange(7, dtype=np.float64),
        "prompt": "pick up the red cube",
    }


def test_metadata_then_request_reply_with_server_timing(port: int, model: Model) -> None:
    with _connect(port) as ws:
        meta = unpackb(ws.recv(timeout=5))
        assert meta == {"model": "color-reach", "action_horizon": 4}
        ws.send(packb(_obs()))
        first = unpackb(ws.recv(timeout=5))
        ws.send(packb(_obs()))
        second = unpackb(ws.recv(timeout=5))
    assert first["actions"].shape == (4, 7) and first["actions"].dtype == np.float32
    assert np.all(first["actions"] == 1.0) and np.all(second["actions"] == 2.0)
    assert first["note"] == "hi"
    assert set(first["server_timing"]) == {"infer_ms"} and first["server_timing"]["infer_ms"] >= 0
    assert set(second["server_timing"]) == {"infer_ms", "prev_total_ms"}
    model_id, obs, session = model.calls[0]
    assert model_id == "color-reach" and obs["prompt"] == "pick up the red cube"
    assert obs["observation/exterior_image_1_left"].shape == (224, 224, 3)
    assert session and model.calls[1][2] == session


def test_session_ends_when_the_connection_closes(port: int, model: Model) -> None:
    with _connect(port) as ws:
        ws.recv(timeout=5)
        ws.send(packb(_obs()))
        ws.recv(timeout=5)
    session = model.calls[0][2]
    for _ in range(200):
        if model.ended:
            break
        asyncio.run(asyncio.sleep(0.01))
    assert model.ended == [("color-reach", session)]


def test_model_named_in_the_query(port: int, model: Model) -> None:
    with _connect(port, query="/?model=onnx-tiny") as ws:
        assert unpackb(ws.recv(timeout=5))["model"] == "onnx-tiny"
        ws.send(packb(_obs()))
        ws.recv(timeout=5)
    assert model.calls[0][0] == "onnx-tiny"


@pytest.mark.parametrize("key", [None, "wrong"])
def test_refuses_missing_or_wrong_key_with_http_401(port: int, key: str | None) -> None:
    with pytest.raises(websockets.InvalidStatus) as err:
        _connect(port, key=key)
    assert err.value.response.status_code == 401
    assert b"API key" in err.value.response.body


def test_healthz() -> None:
    async def infer(m: str, o: dict[str, Any]) -> dict[str, Any]:
        return {"actions": np.zeros((1, 7))}

    with serve_in_thread(create_openpi_app(infer, {}, None, model="m")) as p:
        r = httpx.get(f"http://127.0.0.1:{p}/healthz", timeout=5)
        assert r.status_code == 200 and r.text == "OK\n"
        with _connect(p, key=None) as ws:  # check_key=None: open, as openpi's own server
            assert unpackb(ws.recv(timeout=5)) == {}


def _expect_error(ws: ClientConnection, fragment: str) -> None:
    text = ws.recv(timeout=5)
    assert isinstance(text, str) and fragment in text, text
    with pytest.raises(websockets.ConnectionClosedError) as err:
        ws.recv(timeout=5)
    assert err.value.rcvd is not None and err.value.rcvd.code == 1011


@pytest.mark.parametrize(
    "mode, payload, fragment",
    [
        ("ok", b"\xc1garbage", "bad observation"),
        ("ok", packb({"x": 1})[:-1], "bad observation"),
        ("ok", packb([1, 2, 3]), "msgpack map"),
        ("ok", "text frame", "binary msgpack"),
        ("ok", packb({"img": np.zeros(300_000, np.uint8)}), "exceeds the limit"),
        (
            "ok",
            b"\x81\xa1x\x84\xc4\x0b__ndarray__\xc3\xc4\x04data\xc4\x08"
            + bytes(8)
            + b"\xc4\x05dtype\xa3|O8\xc4\x05shape\x91\x01",
            "dtype",
        ),
        ("raise", packb({"a": 1}), "weights on fire"),
        ("slow", packb({"a": 1}), "did not answer within 0.5 s"),
        ("nan", packb({"a": 1}), "non-finite"),
        ("1d", packb({"a": 1}), "(H, D)"),
    ],
)
def test_errors_are_a_text_frame_then_close_1011(
    port: int, model: Model, mode: str, payload: Any, fragment: str
) -> None:
    model.mode = mode
    with _connect(port) as ws:
        ws.recv(timeout=5)
        ws.send(payload)
        _expect_error(ws, fragment)
    model.mode = "ok"
    with _connect(port) as ws:  # the server goes on serving
        ws.recv(timeout=5)
        ws.send(packb(_obs()))
        assert "actions" in unpackb(ws.recv(timeout=5))


def test_two_clients_are_independent(port: int, model: Model) -> None:
    with _connect(port) as a, _connect(port) as b:
        a.recv(timeout=5)
        b.recv(timeout=5)
        a.send(b"\xc1")
        _expect_error(a, "bad observation")
        b.send(packb(_obs()))
        assert unpackb(b.recv(timeout=5))["actions"].shape == (4, 7)


@pytest.mark.parametrize(
    "header, key",
    [
        ("Api-Key abc", "abc"),
        ("api-key  abc ", "abc"),
        ("Bearer abc", None),
        ("Api-Key", None),
        (None, None),
        ("", None),
    ],
)
def test_parse_api_key(header: str | None, key: str | None) -> None:
    assert parse_api_key(header) == key


def test_config_validates() -> None:
    with pytest.raises(ValueError, match="model"):
        OpenPIServerConfig(model="")
    with pytest.raises(ValueError, match="infer_timeout_s"):
        OpenPIServerConfig(model="m", infer_timeout_s=0)
