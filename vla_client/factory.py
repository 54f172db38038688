"""`make_client(url, ...)`: one URL picks the wire format, so a user (or the daemon's
``--assist-url``) can point at either kind of server.

* ``ws://HOST:8000/v1/stream`` (or ``wss://``) — the VLA service: `VLAStreamingClient`;
* ``openpi://HOST:PORT`` (``openpi+wss://`` for TLS) — an openpi server: `OpenPIClient` with
  `NativeAdapter` (our own openpi endpoint); add ``?adapter=droid`` for a DROID policy server.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

from vla_client.base import AsyncStreamingClient
from vla_client.openpi_adapters import DroidAdapter, NativeAdapter, OpenPIAdapter
from vla_client.openpi_client import OpenPIClient
from vla_client.stream_client import VLAStreamingClient

ADAPTERS = {"native": NativeAdapter, "droid": DroidAdapter}


def make_client(url: str, api_key: str = "", **kwargs: Any) -> AsyncStreamingClient:
    """The async client for `url` (see the module docstring); `kwargs` go to its constructor.

    Raises:
        ValueError: an unknown scheme or adapter.
    """
    parts = urlsplit(url)
    if parts.scheme in ("ws", "wss"):
        return VLAStreamingClient(url, api_key, **kwargs)
    if parts.scheme in ("openpi", "openpi+ws", "openpi+wss"):
        query = parse_qs(parts.query)
        name = query.pop("adapter", ["native"])[0]
        if name not in ADAPTERS:
            raise ValueError(f"adapter: expected one of {sorted(ADAPTERS)}, got {name!r}")
        if query:
            raise ValueError(f"openpi URL: unknown query parameters {sorted(query)}; allowed: adapter")
        adapter: OpenPIAdapter = ADAPTERS[name]()
        ws_url = urlunsplit(("wss" if parts.scheme == "openpi+wss" else "ws", parts.netloc, parts.path, "", ""))
        return OpenPIClient(ws_url, api_key or None, adapter=adapter, **kwargs)
    raise ValueError(f"url: expected ws://HOST:PORT/v1/stream or openpi://HOST:PORT, got {url!r}")
