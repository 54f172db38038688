"""`WebXRSource`: the controllers as the headset's browser reports them (no APK, no adb).

The daemon serves a page (`oculus_server.vr.webxr_server`); opened in the headset's browser it
enters an ``immersive-vr`` (or ``immersive-ar``) session and streams every XR frame over a
WebSocket. Each frame is decoded into exactly the sample the Quest app produces
(`oculus_server.vr.webxr_frames`: same head_T_controller frame, button names and ranges), passed
through the link filter (`oculus_server.vr.webxr_link`: late and out-of-order frames dropped and
counted) and handed to the VR thread by `poll`, newest first, like `QuestReader`.

Link loss works as with the app: when no frame arrives (page closed, headset asleep, session
ended) the samples stop, the state turns STALE after `stale_timeout_s` and the policy holds the
arm until a fresh grip press (`link_timeout_s`). The page shows what the daemon sees: the link,
the rate, whether the arm follows (deadman) and whether an episode records (`attach_feedback`).

Secure context: browsers allow WebXR on ``https://`` or ``http://localhost`` only. Bound to
127.0.0.1 (the default) the page is plain HTTP, for ``adb reverse tcp:PORT tcp:PORT``; bound to
another address it is HTTPS with a self-signed certificate made on first use
(`oculus_server.vr.webxr_cert`). A session token in the URL keeps other devices out; one page at
a time.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from oculus_server.constants import VR_LINK_TIMEOUT_S
from oculus_server.errors import ConfigError
from oculus_server.vr.parser import Rejection
from oculus_server.vr.source import SourceState, SourceStatus, VRSample, VRSource
from oculus_server.vr.webxr_cert import Certificate, default_cert_dir, ensure_certificate, lan_address
from oculus_server.vr.webxr_frames import WebXRFrame, decode_frame
from oculus_server.vr.webxr_link import LATE_AFTER_S, LinkFigures, LinkFilter
from oculus_server.vr.webxr_server import PageServer

log = logging.getLogger(__name__)

DEFAULT_PORT = 8765
Feedback = Callable[[], Mapping[str, Any]]


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and "localhost"."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _ms(seconds: float) -> float | None:
    return None if seconds != seconds else round(seconds * 1000.0, 2)  # NaN -> None (JSON null)


class WebXRSource(VRSource):
    """Controllers from the headset's browser over a WebSocket (see the module docstring).

    Args:
        bind: address the page server listens on (127.0.0.1: reach it with ``adb reverse``;
            0.0.0.0 or a LAN address: HTTPS on the LAN).
        port: TCP port (0: a free one, shown in `url`).
        https: serve HTTPS with a self-signed certificate; None: only when `bind` is not loopback.
        token: the session token (default: a fresh ``secrets.token_urlsafe(16)`` per start).
        cert_dir: where the certificate is kept (default ``~/.config/oculus-server/webxr``).
        stale_timeout_s: no frame for longer than this -> STALE.
        late_after_s: frames later than this behind the quickest recent one are dropped.
        emulate: path of IWER's ``iwer.module.js``: the page loads it and an emulation harness
            instead of using the browser's own WebXR (browser tests only).
        clock: monotonic clock, seconds.
        name: source name shown on the dashboard.
    """

    def __init__(
        self,
        *,
        bind: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        https: bool | None = None,
        token: str | None = None,
        cert_dir: str | Path | None = None,
        stale_timeout_s: float = VR_LINK_TIMEOUT_S,
        late_after_s: float = LATE_AFTER_S,
        emulate: str | Path | None = None,
        clock: Callable[[], float] = time.monotonic,
        name: str = "webxr",
    ) -> None:
        if not bind:
            raise ConfigError("expected an address to bind the WebXR page server to (e.g. 127.0.0.1); got ''")
        if not 0 <= int(port) <= 65535:
            raise ConfigError(f"expected a WebXR port in 0..65535; got {port!r}")
        if not stale_timeout_s > 0:
            raise ConfigError(f"stale_timeout_s must be > 0, got {stale_timeout_s!r}")
        if token is not None and len(token) < 16:
            raise ConfigError("expected a WebXR session token of at least 16 characters")
        self.name = name
        self.bind = bind
        self.https = (not is_loopback(bind)) if https is None else bool(https)
        self.token = token or secrets.token_urlsafe(16)
        self.cert_dir = Path(cert_dir) if cert_dir else default_cert_dir()
        self.stale_timeout_s = float(stale_timeout_s)
        self.late_after_s = float(late_after_s)
        self.emulate = Path(emulate) if emulate else None
        self.certificate: Certificate | None = None
        self._clock = clock
        self._port = int(port)
        self._lock = threading.Lock()
        self._server: PageServer | None = None
        self._feedback: Feedback | None = None
        self._link = LinkFilter(late_after_s)
        self._newest: tuple[WebXRFrame, float] | None = None
        self._connected = False
        self._ever_connected = False
        self._last_sample_t: float | None = None
        self._samples = 0
        self._out_seq = 0
        self._rejected = 0
        self._connections = 0
        self._reasons: dict[str, int] = {}
        self._last_error = ""
        self._closed = False
        self._url: str | None = None

    # --- wiring -------------------------------------------------------------------------------
    def attach_feedback(self, feedback: Feedback) -> None:
        """Sets what the page is told about the daemon (engaged, recording, ...), polled ~10 Hz."""
        self._feedback = feedback

    @property
    def port(self) -> int:
        return self._server.port if self._server is not None else self._port

    @property
    def url(self) -> str:
        """The address to open in the headset's browser (token included)."""
        if self._url is None:
            self._url = self._make_url()
        return self._url

    def _make_url(self) -> str:
        host = self.bind
        if host in ("0.0.0.0", "::", ""):
            host = lan_address() or "127.0.0.1"
        elif is_loopback(host):
            host = "localhost"  # a secure context over adb reverse; 127.0.0.1 is one in Chromium too
        scheme = "https" if self.https else "http"
        return f"{scheme}://{host}:{self.port}/?token={self.token}"

    # --- VRSource -----------------------------------------------------------------------------
    def start(self) -> None:
        """Makes the certificate if needed, starts the page server and logs the URL to open.

        Raises:
            VRSourceError: the port is taken, or openssl failed (HTTPS).
        """
        ssl_context = None
        if self.https:
            hosts = [h for h in (self.bind, lan_address()) if h and h not in ("0.0.0.0", "::")]
            self.certificate = ensure_certificate(self.cert_dir, hosts)
            ssl_context = self.certificate.server_context()
        server = PageServer(
            self.bind, self._port, self.token, self._on_message, self._on_connect, self._on_disconnect,
            self._page_feedback, ssl_context=ssl_context, emulation_module=self.emulate,
        )
        server.start()
        self._server = server
        self._url = self._make_url()
        log.warning("WebXR: open %s in the headset's browser%s", self.url,
                    "" if self.https else f" (after `adb reverse tcp:{self.port} tcp:{self.port}`)")
        if self.certificate is not None:
            log.warning("WebXR: the browser will warn about the self-signed certificate; its SHA-256 "
                        "fingerprint is %s (Advanced → Proceed)", self.certificate.fingerprint)

    def poll(self) -> VRSample | None:
        """The newest frame received since the last call, as a VRSample (t_recv: its receipt), or None."""
        with self._lock:
            newest, self._newest = self._newest, None
            if newest is None:
                return None
            frame, t_recv = newest
            seq = self._out_seq
            self._out_seq += 1
        return VRSample(poses=frame.poses, buttons=frame.buttons, t_recv=t_recv, seq=seq)

    def status(self) -> SourceStatus:
        """Link state and counters (drops by reason in `reject_reasons`)."""
        with self._lock:
            now = self._clock()
            state, detail = self._state(now)
            return SourceStatus(
                state=state, samples=self._samples, rejected=self._rejected, reconnects=max(0, self._connections - 1),
                last_error=self._last_error, detail=detail, reject_reasons=dict(self._reasons),
            )

    def close(self) -> None:
        """Stops the page server (idempotent)."""
        with self._lock:
            self._closed = True
            server, self._server = self._server, None
        if server is not None:
            self._port = server.port
            server.stop()

    def link_figures(self) -> LinkFigures:
        """The current connection's link figures (rate, drops, delay)."""
        with self._lock:
            return self._link.figures(self._clock())

    # --- server callbacks (server thread) -------------------------------------------------------
    def _on_connect(self) -> None:
        with self._lock:
            self._connected = True
            self._ever_connected = True
            self._connections += 1
            self._link = LinkFilter(self.late_after_s)
        log.info("WebXR: page connected")

    def _on_disconnect(self, why: str) -> None:
        with self._lock:
            self._connected = False
            self._last_error = why
        log.warning("WebXR: %s", why)

    def _on_message(self, text: str, recv_wall_s: float, recv_mono_s: float) -> None:
        if text.startswith('{"type":"hello"') or text.startswith('{"type":"session"'):
            log.info("WebXR page: %s", text[:200])
            return
        out = decode_frame(text)
        now = self._clock()
        with self._lock:
            if isinstance(out, Rejection):
                self._reject(out.reason, out.detail)
                return
            verdict = self._link.offer(out.seq, out.sent_ms / 1000.0, recv_wall_s, recv_mono_s)
            if verdict is not None:
                self._reject(verdict, "")
                return
            self._samples += 1
            self._newest = (out, now)
            self._last_sample_t = now

    def _reject(self, reason: str, detail: str) -> None:
        self._rejected += 1
        self._reasons[reason] = self._reasons.get(reason, 0) + 1
        if detail:
            self._last_error = detail

    def _page_feedback(self) -> dict[str, Any]:
        """What the page shows: the link as the daemon sees it, plus the daemon's own view."""
        with self._lock:
            now = self._clock()
            state, _ = self._state(now)
            fig = self._link.figures(now)
        out: dict[str, Any] = {
            "type": "status", "link": state.value, "rate_hz": round(fig.rate_hz, 1), "accepted": fig.accepted,
            "late": fig.late, "out_of_order": fig.out_of_order, "rejected": self._rejected,
            # page clock → daemon clock; the one-way latency when both share a clock (loopback)
            "delay_ms_p50": _ms(fig.delay_p50_s), "delay_ms_p99": _ms(fig.delay_p99_s),
        }
        feedback = self._feedback
        if feedback is not None:
            out.update(feedback())
        return out

    def _state(self, now: float) -> tuple[SourceState, str]:
        if self._closed:
            return SourceState.DISCONNECTED, "closed"
        if not self._connected:
            if self._ever_connected:
                return SourceState.DISCONNECTED, f"page gone ({self._last_error}); open {self.url}"
            return SourceState.WAITING, f"open {self.url}"
        if self._last_sample_t is None:
            return SourceState.WAITING, "page connected, no XR frame yet (press 'Enter VR')"
        age = now - self._last_sample_t
        if age > self.stale_timeout_s:
            return SourceState.STALE, f"no XR frame for {age:.1f} s"
        return SourceState.CONNECTED, f"{self._samples} frames, {self._rejected} dropped"


__all__ = ["DEFAULT_PORT", "WebXRSource", "is_loopback"]
