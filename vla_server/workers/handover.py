"""The hand-over channel between the service and a model worker: a ``SOCK_SEQPACKET`` Unix
socketpair (one message per packet, no framing) carrying small msgpack maps and, with ``adopt``,
one connected socket's file descriptor (``SCM_RIGHTS``).

The service authenticates an openpi connection and admits it (tier, session count), then hands
the socket to the worker of the model, which serves it from then on (`vla_server.workers.openpi_host`):
one process per request, as openpi's own server, while the model still runs outside the service.

Service → worker: ``adopt`` (fd; ``session``, ``tenant``, ``model``, ``metadata``, ``rate_hz``,
``max_message_bytes``, ``ws_max_size``, ``max_pixels``, ``infer_timeout_s``), ``pace``
(``tenant``, ``rate_hz``: that tenant's request rate on this worker, None = unlimited), ``close``
(``session``, ``message``, ``code``: the error text, then that close code).
Worker → service: ``adopted`` / ``refused`` (``session``, ``error``), ``counts`` (``sessions``:
{session: [requests, steps]}, sent at most every `COUNTS_PERIOD_S` while they change),
``closed`` (``session``, ``requests``, ``steps``, ``error``: the text sent before the close, or
None), ``overran`` (``timeout_s``: a request ran longer; the worker exits next).
Nothing is ever unpickled; a packet that does not decode is dropped (and its descriptors closed).
"""

from __future__ import annotations

import os
import select
import socket
import time
from typing import Any

import msgpack

MAX_PACKET_BYTES = 64 * 1024
COUNTS_PERIOD_S = 0.5
_SEND_WAIT_S = 2.0  # a full channel (the peer not reading) is waited on this long, then the send fails


class HandoverError(ValueError):
    """A packet that is not a hand-over message."""


def channel() -> tuple[socket.socket, socket.socket]:
    """A connected pair: (the service's end, the worker's end)."""
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


def pack(msg: dict[str, Any]) -> bytes:
    data = msgpack.packb(msg, use_bin_type=True)
    if len(data) > MAX_PACKET_BYTES:
        raise HandoverError(f"hand-over message of {len(data)} bytes exceeds {MAX_PACKET_BYTES}")
    return data


def unpack(data: bytes) -> dict[str, Any]:
    """Decodes one packet; raises `HandoverError`."""
    try:
        msg = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise HandoverError(f"undecodable hand-over packet: {exc}") from None
    if not isinstance(msg, dict) or not isinstance(msg.get("op"), str):
        raise HandoverError(f"expected a map with a string 'op', got {type(msg).__name__}")
    return msg


def send(sock: socket.socket, msg: dict[str, Any], fds: list[int] | None = None) -> None:
    """Sends one message (with `fds`) on a non-blocking channel end, waiting up to `_SEND_WAIT_S`
    while the channel is full; raises `OSError` (``TimeoutError`` when still full)."""
    data = pack(msg)
    deadline = time.monotonic() + _SEND_WAIT_S
    while True:
        try:
            socket.send_fds(sock, [data], fds or [])
            return
        except BlockingIOError:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("hand-over channel full") from None
            select.select([], [sock], [], remaining)


def receive(sock: socket.socket) -> tuple[dict[str, Any] | None, list[int]] | None:
    """One waiting packet of a non-blocking channel end: (message, descriptors), (None, []) at
    EOF, or None when nothing waits. A packet that does not decode raises `HandoverError` (its
    descriptors closed)."""
    try:
        data, fds, _flags, _addr = socket.recv_fds(sock, MAX_PACKET_BYTES, 1)
    except BlockingIOError:
        return None
    except ConnectionError:
        return None, []
    if not data:
        for fd in fds:
            os.close(fd)
        return None, []
    try:
        return unpack(data), list(fds)
    except HandoverError:
        for fd in fds:
            os.close(fd)
        raise
