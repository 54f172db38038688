"""The WebXR page's server: serves the page and its WebSocket on one port, in a thread of its own.

One asyncio loop (thread ``webxr-server``) runs a `websockets` server that answers

* ``GET /?token=T`` — the page (``webxr_page/index.html``), ``GET /app.js`` and the page's other
  static files (no secret in them); ``GET /emulate/iwer.module.js`` only when an emulation module
  is configured (tests);
* ``GET /ws?token=T`` — the WebSocket the page streams its frames on and receives the daemon's
  view on (`Feedback`, every `feedback_period_s`).

Before anything is read the server is bounded: at most `MAX_PENDING` requests in flight, frames
of at most `MAX_MESSAGE_BYTES`. A wrong or missing token gets 403 (compared in constant time), a
second page while one is connected gets 409, and neither reaches the handler. What a connection
receives goes to `on_message(text, recv_wall_s, recv_mono_s)`; `on_connect` / `on_disconnect` mark
the page's arrival and departure. The callbacks run on the server's thread.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from oculus_server.errors import VRSourceError
from oculus_server.vr.webxr_frames import MAX_MESSAGE_BYTES

log = logging.getLogger(__name__)
_QUIET = logging.getLogger(__name__ + ".websockets")  # websockets' per-request lines: warnings only
_QUIET.setLevel(logging.WARNING)

PAGE_DIR = Path(__file__).resolve().parent / "webxr_page"
MAX_PENDING = 16  # requests and connections in flight at once
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
CLOSE_BUSY = 4409  # close code when a second page slips past the handshake check
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8"}
EMULATION_TAG = "<!--EMULATION-->"


def _response(status: int, reason: str, body: bytes, content_type: str = "text/plain; charset=utf-8") -> Response:
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body))),
                       ("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"),
                       ("Referrer-Policy", "no-referrer"), ("Connection", "close")])
    return Response(status, reason, headers, body)


class PageServer:
    """Serves the page and one WebSocket connection at a time (see the module docstring).

    Args:
        host: address to bind (127.0.0.1 by default in the source; 0.0.0.0 for the LAN).
        port: TCP port (0: a free one; `port` then holds the one chosen after `start`).
        token: the session token every page and WebSocket request must carry.
        on_message, on_connect, on_disconnect: callbacks (server thread).
        feedback: returns the message (a JSON-ready mapping) sent to the page every `feedback_period_s`.
        ssl_context: serve HTTPS/WSS with it (None: plain HTTP, for localhost / adb reverse).
        emulation_module: path of a WebXR emulation ES module (IWER's ``iwer.module.js``) to serve
            with the page's emulation harness — tests only.
    """

    def __init__(
        self,
        host: str,
        port: int,
        token: str,
        on_message: Callable[[str, float, float], None],
        on_connect: Callable[[], None],
        on_disconnect: Callable[[str], None],
        feedback: Callable[[], Mapping[str, Any]],
        feedback_period_s: float = 0.1,
        ssl_context: ssl.SSLContext | None = None,
        emulation_module: Path | None = None,
    ) -> None:
        self.host = host
        self.port = int(port)
        self.token = token
        self._on_message = on_message
        self._on_connect = on_connect
        self._on_disconnect = on_disconnect
        self._feedback = feedback
        self.feedback_period_s = float(feedback_period_s)
        self._ssl = ssl_context
        self._emulation = emulation_module
        self._active: ServerConnection | None = None
        self._server: Any = None
        self.refused: dict[str, int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._files = self._load_files()

    # --- life cycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Starts the server thread and waits until it listens.

        Raises:
            VRSourceError: the port cannot be bound, or the server did not start in time.
        """
        self._thread = threading.Thread(target=self._run, name="webxr-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S):
            raise VRSourceError(f"the WebXR page server did not start within {START_TIMEOUT_S:g} s")
        if self._error is not None:
            raise VRSourceError(f"the WebXR page server could not listen on {self.host}:{self.port}: "
                                f"{self._error}") from None

    def stop(self) -> None:
        """Closes the connection and the server (idempotent, bounded by `STOP_TIMEOUT_S`)."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:  # loop already closed
                pass
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_S)
            if self._thread.is_alive():
                log.warning("the WebXR page server did not stop within %.0f s", STOP_TIMEOUT_S)

    @property
    def scheme(self) -> str:
        return "https" if self._ssl is not None else "http"

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # noqa: BLE001 - reported to start() or logged
            self._error = exc
            self._ready.set()
            if not isinstance(exc, OSError):
                log.exception("the WebXR page server failed")

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve(
            self._handler, self.host, self.port, ssl=self._ssl, process_request=self._process_request,
            max_size=MAX_MESSAGE_BYTES, max_queue=4, compression=None, open_timeout=5, close_timeout=1,
            ping_interval=5, ping_timeout=5, server_header=None, logger=_QUIET,
        ) as server:
            self._server = server
            self.port = int(server.sockets[0].getsockname()[1])
            self._ready.set()
            await self._stop.wait()
            if self._active is not None:
                await self._active.close(1001, "daemon stopping")

    # --- HTTP ---------------------------------------------------------------------------------
    def _load_files(self) -> dict[str, tuple[bytes, str]]:
        files: dict[str, tuple[bytes, str]] = {}
        for path in PAGE_DIR.iterdir():
            if path.suffix in _TYPES and path.name != "emulate.js":
                files["/" + path.name] = (path.read_bytes(), _TYPES[path.suffix])
        index = files.pop("/index.html")[0].decode("utf-8")
        if self._emulation is not None:
            if not self._emulation.is_file():
                raise VRSourceError(f"WebXR emulation module {str(self._emulation)!r} is not a file")
            files["/emulate/iwer.module.js"] = (self._emulation.read_bytes(), _TYPES[".js"])
            files["/emulate.js"] = ((PAGE_DIR / "emulate.js").read_bytes(), _TYPES[".js"])
            index = index.replace(EMULATION_TAG, '<script type="module" src="emulate.js"></script>')
        files["/"] = (index.encode("utf-8"), _TYPES[".html"])
        return files

    def _token_ok(self, query: str) -> bool:
        given = parse_qs(query).get("token", [""])[0]
        return secrets.compare_digest(given.encode("utf-8", "replace"), self.token.encode("utf-8"))

    def _refuse(self, why: str, status: int, reason: str, text: str) -> Response:
        self.refused[why] = self.refused.get(why, 0) + 1
        return _response(status, reason, text.encode("utf-8"))

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        if self._server is not None and len(self._server.connections) > MAX_PENDING:
            return self._refuse("busy", 503, "Service Unavailable", "too many requests at once\n")
        if parts.path == "/ws":
            if not self._token_ok(parts.query):
                return self._refuse("token", 403, "Forbidden", "wrong or missing session token\n")
            if self._active is not None:
                return self._refuse("second_page", 409, "Conflict",
                                    "another page is already connected to this daemon\n")
            return None
        if parts.path == "/favicon.ico":
            return _response(204, "No Content", b"")
        entry = self._files.get(parts.path)
        if entry is None:
            return self._refuse("not_found", 404, "Not Found", "not found\n")
        if parts.path == "/" and not self._token_ok(parts.query):
            return self._refuse("token", 403, "Forbidden",
                                "wrong or missing session token: open the URL the daemon printed\n")
        return _response(200, "OK", entry[0], entry[1])

    # --- WebSocket ----------------------------------------------------------------------------
    async def _handler(self, ws: ServerConnection) -> None:
        if self._active is not None:  # two handshakes raced past _process_request
            self.refused["second_page"] = self.refused.get("second_page", 0) + 1
            await ws.close(CLOSE_BUSY, "another page is already connected")
            return
        self._active = ws
        why = "page closed the connection"
        self._on_connect()
        sender = asyncio.create_task(self._send_feedback(ws))
        try:
            async for message in ws:
                if isinstance(message, bytes):
                    message = message.decode("utf-8", "replace")
                self._on_message(message, time.time(), time.monotonic())
        except ConnectionClosed as exc:
            why = f"connection lost ({exc})"
        finally:
            sender.cancel()
            self._active = None
            self._on_disconnect(why)

    async def _send_feedback(self, ws: ServerConnection) -> None:
        deadline = time.monotonic()
        try:
            while True:
                await ws.send(json.dumps(dict(self._feedback()), allow_nan=False))
                deadline += self.feedback_period_s
                await asyncio.sleep(max(0.0, deadline - time.monotonic()))
        except ConnectionClosed:
            return
        except Exception:  # noqa: BLE001 - feedback is best effort; the stream goes on
            log.exception("WebXR feedback to the page failed")


__all__ = ["CLOSE_BUSY", "MAX_PENDING", "PAGE_DIR", "PageServer"]
