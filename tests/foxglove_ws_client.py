"""A small Foxglove WebSocket protocol client for tests (written from the protocol spec, v1).

Text frames are JSON with an ``op`` (``serverInfo``, ``advertise``, ``unadvertise``, ``status``);
binary frames start with an opcode byte: 0x01 message data (u32 subscription id, u64 log time ns,
payload), 0x02 time (u64 ns). The client subscribes with ``{"op": "subscribe", "subscriptions":
[{"id", "channelId"}]}``. Subprotocols: foxglove-sdk's servers speak ``foxglove.sdk.v1`` (the
protocol's current name; the messages are those of ``foxglove.websocket.v1``); both are offered.
"""

from __future__ import annotations

import base64
import json
import socket
import struct
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

SUBPROTOCOLS = ("foxglove.sdk.v1", "foxglove.websocket.v1")


@dataclass
class Channel:
    id: int
    topic: str
    encoding: str
    schema_name: str
    schema: str
    schema_encoding: str

    def schema_bytes(self) -> bytes:
        """The schema as bytes: base64-decoded for binary encodings (protobuf), else UTF-8."""
        if self.schema_encoding == "protobuf":
            return base64.b64decode(self.schema)
        return self.schema.encode()


@dataclass
class Received:
    topic: str
    log_ns: int
    data: bytes
    t_recv: float  # monotonic, s


@dataclass
class FoxgloveClient:
    """A connection to a Foxglove WebSocket server."""

    url: str
    rcvbuf: int = 0  # > 0: a small socket receive buffer, so a client that stops reading stalls the sender
    ws: ClientConnection = field(init=False)
    server_info: dict[str, Any] = field(default_factory=dict)
    channels: dict[int, Channel] = field(default_factory=dict)
    subscriptions: dict[int, int] = field(default_factory=dict)  # subscription id -> channel id
    times: list[int] = field(default_factory=list)
    closed: bool = False  # the server closed the connection

    def __post_init__(self) -> None:
        sock = None
        if self.rcvbuf > 0:
            host, _, port = self.url.removeprefix("ws://").partition(":")
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
            sock.settimeout(10)
            sock.connect((host, int(port)))
        self._stack = ExitStack()
        self.ws = self._stack.enter_context(connect(
            self.url, sock=sock, subprotocols=list(SUBPROTOCOLS),  # type: ignore[list-item]
            open_timeout=10, max_size=None, max_queue=4 if self.rcvbuf > 0 else 16, ping_interval=None))

    def close(self) -> None:
        self._stack.close()

    def by_topic(self) -> dict[str, Channel]:
        return {c.topic: c for c in self.channels.values()}

    def _handle_text(self, text: str) -> None:
        msg = json.loads(text)
        op = msg.get("op")
        if op == "serverInfo":
            self.server_info = msg
        elif op == "advertise":
            for c in msg["channels"]:
                self.channels[c["id"]] = Channel(c["id"], c["topic"], c["encoding"], c.get("schemaName", ""),
                                                 c.get("schema", ""), c.get("schemaEncoding", ""))
        elif op == "unadvertise":
            for cid in msg["channelIds"]:
                self.channels.pop(cid, None)

    def _handle_binary(self, data: bytes) -> Received | None:
        if data[0] == 0x01:
            sub_id, log_ns = struct.unpack_from("<IQ", data, 1)
            cid = self.subscriptions.get(sub_id)
            topic = self.channels[cid].topic if cid in self.channels else f"?{sub_id}"
            return Received(topic, log_ns, bytes(data[13:]), time.monotonic())
        if data[0] == 0x02:
            self.times.append(struct.unpack_from("<Q", data, 1)[0])
        return None

    def recv(self, timeout: float) -> Received | None:
        """Reads one frame (None for a control frame, a timeout, or once the server has closed)."""
        if self.closed:
            time.sleep(timeout)
            return None
        try:
            frame = self.ws.recv(timeout=timeout)
        except TimeoutError:
            return None
        except ConnectionClosed:
            self.closed = True
            return None
        if isinstance(frame, str):
            self._handle_text(frame)
            return None
        return self._handle_binary(frame)

    def wait_channels(self, topics: set[str], timeout: float = 10.0) -> dict[str, Channel]:
        """Reads until every topic in `topics` is advertised; returns topic -> channel."""
        end = time.monotonic() + timeout
        while not topics <= set(self.by_topic()):
            if time.monotonic() > end:
                raise TimeoutError(f"not advertised within {timeout} s: {sorted(topics - set(self.by_topic()))}")
            self.recv(0.2)
        return self.by_topic()

    def subscribe(self, topics: list[str]) -> None:
        chans = self.by_topic()
        subs = []
        for topic in topics:
            sid = len(self.subscriptions) + 1
            self.subscriptions[sid] = chans[topic].id
            subs.append({"id": sid, "channelId": chans[topic].id})
        self.ws.send(json.dumps({"op": "subscribe", "subscriptions": subs}))

    def collect(self, seconds: float) -> list[Received]:
        """Every message received during `seconds`."""
        out: list[Received] = []
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            r = self.recv(min(left, 0.2))
            if r is not None:
                out.append(r)
        return out


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def connect_when_up(url: str, alive: Callable[[], bool], timeout: float, **kwargs: Any) -> FoxgloveClient:
    """Connects once the server listens; raises RuntimeError when `alive()` turns False or `timeout` s pass."""
    end = time.monotonic() + timeout
    while True:
        try:
            return FoxgloveClient(url, **kwargs)
        except OSError:
            if time.monotonic() > end or not alive():
                raise RuntimeError(f"no Foxglove server at {url} within {timeout} s") from None
            time.sleep(0.2)
