"""The line a `vla-server serve` child writes to its parent once it listens (``--ready-fd``).

The daemon starts the inference service through its command line, as it starts the simulator,
and learns from this one line where it listens and — with ``--ephemeral-key`` — the temporary API
key it made for the parent. Format (one line, UTF-8)::

    vla-server ready {"port": 41234, "openpi_port": null, "key": "vla_…"}

The key travels only over that inherited pipe (never argv, never a log). Encoded and parsed here,
for both ends.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

READY_PREFIX = "vla-server ready "
MAX_READY_LINE_BYTES = 4096


class ReadyLineError(ValueError):
    """A line that is not a well-formed ready line; the message says what was expected."""


@dataclass(frozen=True)
class ServiceReady:
    """What a listening service tells its parent.

    Attributes:
        port: the HTTP + ``/v1/stream`` port it listens on (loopback or the configured host).
        openpi_port: the openpi-compatible port, or None when not served.
        key: the temporary API key made with ``--ephemeral-key``, or None.
    """

    port: int
    openpi_port: int | None = None
    key: str | None = None

    def encode(self) -> str:
        """The ready line, with its newline."""
        body = {"port": self.port, "openpi_port": self.openpi_port, "key": self.key}
        return READY_PREFIX + json.dumps(body, separators=(", ", ": ")) + "\n"


def _port(value: object, field: str, optional: bool) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ReadyLineError(f"ready line: {field} must be a port 1..65535{' or null' if optional else ''}, "
                             f"got {value!r}")
    return value


def parse_ready_line(line: str | bytes) -> ServiceReady:
    """The `ServiceReady` of one ready line (trailing newline allowed).

    Raises:
        ReadyLineError: not ``vla-server ready {json}`` with the documented fields.
    """
    if isinstance(line, bytes):
        if len(line) > MAX_READY_LINE_BYTES:
            raise ReadyLineError(f"ready line: expected at most {MAX_READY_LINE_BYTES} bytes, got {len(line)}")
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ReadyLineError(f"ready line: expected UTF-8 text: {exc}") from None
    text = line.rstrip("\r\n")
    if not text.startswith(READY_PREFIX):
        raise ReadyLineError(f"ready line: expected it to start with {READY_PREFIX!r}, got {text[:60]!r}")
    try:
        body = json.loads(text[len(READY_PREFIX):])
    except json.JSONDecodeError as exc:
        raise ReadyLineError(f"ready line: expected a JSON object after the prefix: {exc}") from None
    if not isinstance(body, dict):
        raise ReadyLineError(f"ready line: expected a JSON object, got {type(body).__name__}")
    unknown = set(body) - {"port", "openpi_port", "key"}
    if unknown:
        raise ReadyLineError(f"ready line: unknown fields {sorted(unknown)}; expected port, openpi_port, key")
    key = body.get("key")
    if key is not None and (not isinstance(key, str) or not key):
        raise ReadyLineError(f"ready line: key must be a non-empty string or null, got {type(key).__name__}")
    port = _port(body.get("port"), "port", optional=False)
    assert port is not None
    return ServiceReady(port=port, openpi_port=_port(body.get("openpi_port"), "openpi_port", optional=True), key=key)
