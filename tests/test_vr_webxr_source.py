"""`WebXRSource` on loopback with a real WebSocket client: token, one page, frames → samples, drops,
link loss when the page goes, the daemon's view sent back, HTTPS with the self-signed certificate."""

from __future__ import annotations

import base64
import json
import os
import socket
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from oculus_server.errors import ConfigError
from oculus_server.vr import make_source
from oculus_server.vr.source import SourceState
from oculus_server.vr.trajectories import get_trajectory
from oculus_server.vr.webxr import WebXRSource
from oculus_server.vr.webxr_frames import app_to_grip, matrix_to_quat_pos
from tests.daemon_fakes import wait_for


def _frame(seq: int, t: float = 0.0, sent_ms: float | None = None) -> str:
    poses, _ = get_trajectory("circle").sample(t)
    out: dict = {"type": "frame", "seq": seq, "time": seq * 13.9,
                 "sent": time.time() * 1000 if sent_ms is None else sent_ms}
    for side, pose in poses.items():
        q, p = matrix_to_quat_pos(app_to_grip(pose))
        out[side] = {"p": p, "q": q, "b": [[False, True, 0.0]] * 7, "a": [0, 0, 0, 0]}
    return json.dumps(out)


@pytest.fixture
def source():
    src = WebXRSource(port=0, stale_timeout_s=0.3)
    src.start()
    yield src
    src.close()


def _ws(src: WebXRSource, token: str | None = None):
    return connect(f"ws://127.0.0.1:{src.port}/ws?token={token or src.token}", open_timeout=5)


def _get(url: str, context: ssl.SSLContext | None = None) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5, context=context) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_the_spec_builds_it_with_its_options() -> None:
    src = make_source("webxr@bind=127.0.0.1,port=9999,stale_timeout=0.4,late_after=0.2")
    assert isinstance(src, WebXRSource)
    got = (src.bind, src.port, src.https, src.stale_timeout_s, src.late_after_s)
    assert got == ("127.0.0.1", 9999, False, 0.4, 0.2)
    assert make_source("webxr@bind=0.0.0.0").https  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="takes no argument"):
        make_source("webxr:x")
    with pytest.raises(ConfigError, match="unknown option"):
        make_source("webxr@speed=2")


def test_the_page_needs_the_token(source: WebXRSource) -> None:
    base = f"http://127.0.0.1:{source.port}"
    status, body = _get(f"{base}/?token={source.token}")
    assert status == 200 and "app.js" in body and "emulate.js" not in body
    assert _get(f"{base}/")[0] == 403
    assert _get(f"{base}/?token=wrong{source.token}")[0] == 403
    assert _get(f"{base}/app.js")[0] == 200
    assert _get(f"{base}/emulate/iwer.module.js")[0] == 404  # emulation is served in tests only
    with pytest.raises(InvalidStatus) as exc:
        _ws(source, token="x" * 22)
    assert exc.value.response.status_code == 403
    assert source.url == f"http://localhost:{source.port}/?token={source.token}"


def test_frames_become_samples_and_a_second_page_is_refused(source: WebXRSource) -> None:
    with _ws(source) as ws:
        with pytest.raises(InvalidStatus) as exc:
            _ws(source)
        assert exc.value.response.status_code == 409
        ws.send(_frame(0, 0.0))
        assert wait_for(lambda: source.status().samples == 1, 5)
        sample = source.poll()
        assert sample is not None and sample.seq == 0
        expected, _ = get_trajectory("circle").sample(0.0)
        np.testing.assert_allclose(sample.poses["r"], expected["r"], atol=1e-9)
        assert sample.buttons["RThU"] is False and sample.buttons["rightTrig"] == 0.0
        assert source.poll() is None  # each frame once
        assert source.status().state is SourceState.CONNECTED
        # only the newest frame since the last poll is returned
        for k in (1, 2, 3):
            ws.send(_frame(k, k * 0.1))
        assert wait_for(lambda: source.status().samples == 4, 5)
        newest = source.poll()
        assert newest is not None and newest.seq == 1
        np.testing.assert_allclose(newest.poses["r"], get_trajectory("circle").sample(0.3)[0]["r"], atol=1e-9)
        assert wait_for(lambda: json.loads(ws.recv(timeout=5))["accepted"] == 4, 5)  # sent ~10 Hz
        status = json.loads(ws.recv(timeout=5))
        assert status["type"] == "status" and status["link"] == "connected"


def test_out_of_order_late_and_bad_frames_are_dropped_and_counted(source: WebXRSource) -> None:
    now_ms = time.time() * 1000
    with _ws(source) as ws:
        for k in range(5):
            ws.send(_frame(10 + k, sent_ms=now_ms + k))
        ws.send(_frame(12, sent_ms=now_ms + 5))  # replayed: out of order
        ws.send(_frame(20, sent_ms=now_ms - 2000))  # sent 2 s before its neighbours: late
        ws.send('{"type": "frame", "seq": 21}')  # no time
        ws.send("not json")
        assert wait_for(lambda: source.status().rejected == 4, 5)
    st = source.status()
    assert st.samples == 5
    assert st.reject_reasons == {"out_of_order": 1, "late": 1, "not_a_number": 1, "not_json": 1}


def test_link_loss_when_the_page_goes_then_a_new_page_may_connect(source: WebXRSource) -> None:
    assert source.status().state is SourceState.WAITING
    with _ws(source) as ws:
        ws.send(_frame(0))
        assert wait_for(lambda: source.poll() is not None, 5)
        assert wait_for(lambda: source.status().state is SourceState.STALE, 5)  # no frame for 0.3 s
    assert wait_for(lambda: source.status().state is SourceState.DISCONNECTED, 5)
    assert source.poll() is None
    with _ws(source) as ws:  # the page reloads: the stream starts again at seq 0
        ws.send(_frame(0))
        assert wait_for(lambda: source.status().state is SourceState.CONNECTED, 5)
    assert source.status().reconnects == 1


def test_the_page_is_told_what_the_daemon_sees(source: WebXRSource) -> None:
    view = {"engaged": True, "held": "", "recording": True, "success": False, "messages": 12}
    source.attach_feedback(lambda: view)
    with _ws(source) as ws:
        status = json.loads(ws.recv(timeout=5))
        assert {k: status[k] for k in view} == view
        view["engaged"] = False
        assert wait_for(lambda: json.loads(ws.recv(timeout=5))["engaged"] is False, 5)


def test_https_on_the_lan_with_a_certificate_made_once(tmp_path: Path) -> None:
    src = WebXRSource(bind="127.0.0.2", port=0, https=True, cert_dir=tmp_path)
    src.start()
    try:
        assert src.certificate is not None and src.url.startswith("https://localhost:")
        assert (tmp_path / "key.pem").stat().st_mode & 0o077 == 0
        ctx = ssl.create_default_context(cafile=str(src.certificate.cert))  # verifies name and chain
        status, _ = _get(f"https://127.0.0.2:{src.port}/?token={src.token}", ctx)
        assert status == 200
        with connect(f"wss://127.0.0.2:{src.port}/ws?token={src.token}", ssl=ctx, open_timeout=5) as ws:
            ws.send(_frame(0))
            assert wait_for(lambda: src.poll() is not None, 5)
        first = src.certificate.fingerprint
    finally:
        src.close()
    again = WebXRSource(bind="127.0.0.2", port=0, https=True, cert_dir=tmp_path)
    again.start()
    try:
        assert again.certificate is not None and again.certificate.fingerprint == first  # kept, not remade
    finally:
        again.close()


def test_a_fixed_token_never_reaches_the_recording_metadata() -> None:
    from oculus_server.config import DaemonConfig

    cfg = DaemonConfig(vr_source="webxr@bind=0.0.0.0,token=abcdefghijklmnopqrstuvwx,port=8443")
    assert cfg.vr_source_public == "webxr@bind=0.0.0.0,token=<set>,port=8443"
    assert "abcdefghijklmnop" not in json.dumps(cfg.to_dict(), default=str)


def _upgrade_over_tls(src: WebXRSource, ctx: ssl.SSLContext) -> ssl.SSLSocket:
    """A single-threaded WebSocket upgrade over TLS; returns the socket after the 101 answer."""
    sock = ctx.wrap_socket(socket.create_connection(("127.0.0.2", src.port), timeout=5), server_hostname="127.0.0.2")
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(f"GET /ws?token={src.token} HTTP/1.1\r\nHost: 127.0.0.2:{src.port}\r\nUpgrade: websocket\r\n"
                 f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, f"the server closed the connection after {head!r}"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101 "), head[:80]
    return sock


def test_https_sends_no_session_ticket_after_the_handshake(tmp_path: Path) -> None:
    """TLS 1.3 tickets come after the handshake, while a threaded client reads and writes at once
    (websockets' sync client: 11 of 650 connects under load hung); the server sends none."""
    src = WebXRSource(bind="127.0.0.2", port=0, https=True, cert_dir=tmp_path)
    src.start()
    try:
        assert src.certificate is not None
        ctx = ssl.create_default_context(cafile=str(src.certificate.cert))
        with _upgrade_over_tls(src, ctx) as sock:  # the 101 answer comes after any ticket
            assert sock.version() == "TLSv1.3"
            assert sock.session is not None and not sock.session.has_ticket
    finally:
        src.close()
