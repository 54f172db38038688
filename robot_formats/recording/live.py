"""The live sink: a recording's messages, as they are mapped, over Foxglove's WebSocket protocol.

`LiveServer` wraps foxglove-sdk's WebSocket server (``foxglove.start_server``, subprotocol
``foxglove.websocket.v1``, the Foxglove app's "Open connection" → ws://HOST:8765). Every topic of
the recording (`robot_formats.recording.schemas`) is a channel with the same schema and message
encoding as in the MCAP file, and what is published is the very bytes `TickMapper` made for the
file (one source of truth for both sinks). Channels of the fixed topics, the given cameras and
the optional topics are advertised at start, so a client can subscribe before any data comes.

The server runs in the SDK's own threads; `publish` copies the bytes into each subscribed
client's bounded backlog (the SDK drops a slow client's oldest messages rather than wait).
`wanted` is a plain attribute read (no lock): True while at least one channel has a subscriber,
so producers can skip all encoding when nobody watches. Nothing here blocks on a client.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any, cast

from robot_formats.recording import schemas as S
from robot_formats.recording.encode import Message
from robot_formats.recording.errors import RecordingError

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765  # Foxglove's default for a WebSocket connection
BACKLOG = 256  # messages buffered per client before its oldest are dropped (SDK default 1024)
_SDK_OVERFLOW_LOGGER = "foxglove.websocket.connected_client.send_lossy"  # "outbox for client … full"


class _OverflowCounter(logging.Filter):
    """Counts the SDK's reports of a client whose backlog overflowed (it then drops that client's
    oldest messages; the SDK reports it once per client and exposes no per-message count)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if "full" in record.getMessage():
            self.count += 1
        return True


def advertised_topics(cameras: Iterable[str] = (), optional: bool = True) -> list[S.TopicSpec]:
    """The channels a live server advertises: fixed topics, each camera's pair, the optional ones."""
    specs = list(S.FIXED_TOPICS)
    for name in cameras:
        specs += S.camera_topics(str(name))
    if optional:
        specs += S.OPTIONAL_TOPICS
    return specs


class _Listener:
    """Counts subscriptions (the SDK calls it from its own threads)."""

    def __init__(self, server: LiveServer) -> None:
        self._server = server

    def on_subscribe(self, client: Any, channel: Any) -> None:
        self._server._subscribed(+1)

    def on_unsubscribe(self, client: Any, channel: Any) -> None:
        self._server._subscribed(-1)


class LiveServer:
    """A Foxglove WebSocket server publishing the recording's topics.

    Args:
        host: address to bind (127.0.0.1 unless told otherwise).
        port: TCP port (8765 as Foxglove expects; 0: any free port, see `port`).
        topics: channels to advertise at start (others are advertised on their first message).
        name: the server name clients show.
        backlog: messages kept per client before the oldest are dropped.
        time_capability: the server tells clients the current time (`broadcast_time`; sim time
            for the arena) instead of their using the wall clock.

    Raises:
        RecordingError: foxglove-sdk is missing or the address cannot be bound (the message says
            which address and what to do).
    """

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        topics: Iterable[S.TopicSpec] = (),
        name: str = "oculus-server",
        backlog: int = BACKLOG,
        time_capability: bool = False,
    ) -> None:
        try:
            import foxglove
        except ImportError as exc:  # pragma: no cover - an install without the dependency
            raise RecordingError(f"live view needs foxglove-sdk (pip install foxglove-sdk): {exc}") from None
        self._foxglove = foxglove
        self._lock = threading.Lock()  # channel creation and the subscription count
        self._subscriptions = 0
        self.wanted = False  # read without the lock: a stale value only delays one batch
        self.published = 0
        self.unknown_topics: set[str] = set()
        self._overflows = _OverflowCounter()
        overflow_log = logging.getLogger(_SDK_OVERFLOW_LOGGER)
        overflow_log.addFilter(self._overflows)
        if not overflow_log.isEnabledFor(logging.INFO):  # the SDK reports an overflow at INFO
            overflow_log.setLevel(logging.INFO)
        self._context = foxglove.Context()
        self._channels: dict[str, Any] = {}
        caps = [foxglove.Capability.Time] if time_capability else None
        try:
            self._server = foxglove.start_server(
                name=name, host=host, port=port, context=self._context, capabilities=caps,
                server_listener=cast(Any, _Listener(self)), message_backlog_size=backlog,
            )
        except Exception as exc:  # the SDK raises a plain RuntimeError for a taken port
            logging.getLogger(_SDK_OVERFLOW_LOGGER).removeFilter(self._overflows)
            raise RecordingError(
                f"live view: cannot serve on {host}:{port} ({exc}); choose another --live-port or --no-live"
            ) from None
        self.host = host
        self.port = int(self._server.port)
        if host not in ("127.0.0.1", "localhost", "::1"):
            log.warning("live view on %s:%d: the Foxglove WebSocket protocol has no authentication; anyone who "
                        "can reach this address sees every topic (cameras included)", host, self.port)
        for spec in topics:
            self._channel(spec.topic)

    @property
    def url(self) -> str:
        """ws:// address to open in Foxglove."""
        return f"ws://{self.host}:{self.port}"

    @property
    def client_overflows(self) -> int:
        """Times a client's backlog overflowed (the SDK then dropped its oldest messages)."""
        return self._overflows.count

    @property
    def subscriptions(self) -> int:
        """Channel subscriptions of all connected clients."""
        return self._subscriptions

    def _subscribed(self, delta: int) -> None:
        with self._lock:
            self._subscriptions = max(0, self._subscriptions + delta)
            self.wanted = self._subscriptions > 0

    def _channel(self, topic: str) -> Any | None:
        ch = self._channels.get(topic)
        if ch is not None:
            return ch
        spec = S.topic_spec(topic)
        if spec is None:
            if topic not in self.unknown_topics:
                self.unknown_topics.add(topic)
                log.warning("live view: %s is not a recording topic; not published", topic)
            return None
        name, encoding, data = S.schema_record(spec.schema)
        with self._lock:
            ch = self._channels.get(topic)
            if ch is None:
                schema = self._foxglove.Schema(name=name, encoding=encoding, data=data)
                ch = self._foxglove.Channel(topic, schema=schema, message_encoding=spec.encoding,
                                            context=self._context)
                self._channels[topic] = ch
        return ch

    def topics(self) -> list[str]:
        """Topics advertised so far."""
        return sorted(self._channels)

    def publish(self, messages: Iterable[Message]) -> int:
        """Sends each message to the clients subscribed to its topic; returns how many were sent."""
        sent = 0
        for m in messages:
            ch = self._channel(m.topic)
            if ch is not None and ch.has_sinks():
                ch.log(m.data, log_time=m.log_ns)
                sent += 1
        self.published += sent
        return sent

    def broadcast_time(self, ns: int) -> None:
        """Tells clients the current time (sim time for the arena), ns."""
        self._server.broadcast_time(int(ns))

    def stop(self) -> None:
        """Closes every connection and the listening socket."""
        logging.getLogger(_SDK_OVERFLOW_LOGGER).removeFilter(self._overflows)
        self._server.stop()
