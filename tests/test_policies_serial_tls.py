"""`SerialTLSSocket`: TLS reads and writes take turns (OpenSSL allows one thread per connection),
no reader keeps a writer waiting, timeouts hold; and openpi-remote over ``wss://`` uses it."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from oculus_server.vr.webxr_cert import Certificate, ensure_certificate
from robot_formats.kinematics import PandaKinematics
from robot_formats.robot_state import RobotStateIn, pos_quat_to_pose
from tests.daemon_fakes import wait_for
from tests.fakes.fake_openpi_server import FakeOpenPIServer
from vla_server.policies.base import Observation
from vla_server.policies.openpi_remote import OpenPIRemoteParams, OpenPIRemotePolicy
from vla_server.policies.serial_tls import SerialTLSSocket, serial_tls_context


class _Probe:
    """Stands in for a socket's TLS object: counts the TLS operations in progress at once."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self.inside = 0
        self.peak = 0
        self.reads = 0

    def _run(self, op: str, *args: Any) -> Any:
        with self._lock:
            self.inside += 1
            self.peak = max(self.peak, self.inside)
            self.reads += op == "read"
        try:
            return getattr(self._inner, op)(*args)
        finally:
            with self._lock:
                self.inside -= 1

    def read(self, *args: Any) -> Any:
        return self._run("read", *args)

    def write(self, *args: Any) -> Any:
        return self._run("write", *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _probed(base: type[ssl.SSLSocket]) -> type[ssl.SSLSocket]:
    class Probed(base):  # type: ignore[misc, valid-type]
        @classmethod
        def _create(cls, *args: Any, **kwargs: Any) -> Any:
            sock = super()._create(*args, **kwargs)
            sock._sslobj = _Probe(sock._sslobj)
            return sock

    return Probed


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return ensure_certificate(tmp_path_factory.mktemp("tls"), ["127.0.0.1"])


def _ticketed(cert: Certificate) -> ssl.SSLContext:
    """A server context as most servers have it: TLS 1.3 session tickets after the handshake."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert.cert), str(cert.key))
    assert ctx.num_tickets > 0
    return ctx


@pytest.fixture
def echo(cert: Certificate) -> Iterator[int]:
    """A TLS server on loopback that answers each message with ``ok:`` and the message."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    ctx = _ticketed(cert)

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with ctx.wrap_socket(conn, server_side=True) as tls:
            tls.settimeout(10)
            while data := tls.recv(1024):
                tls.sendall(b"ok:" + data)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield listener.getsockname()[1]
    listener.close()
    t.join(15)


def _reader_then_writer(port: int, cert: Certificate, base: type[ssl.SSLSocket]) -> tuple[_Probe, list[bytes]]:
    """One thread blocks reading (nothing has come yet) while another writes: websockets' sync client."""
    ctx = ssl.create_default_context(cafile=str(cert.cert))
    ctx.sslsocket_class = _probed(base)
    sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="127.0.0.1")
    probe = sock._sslobj  # type: ignore[attr-defined]
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(sock.recv(1024)), daemon=True)
    reader.start()
    assert wait_for(lambda: probe.reads >= 1, 5)  # the reader has tried, found nothing, and waits
    threading.Event().wait(0.2)
    sock.sendall(b"hello")
    reader.join(10)
    sock.close()
    return probe, got


def test_a_waiting_reader_never_overlaps_a_writer_nor_holds_it_up(echo: int, cert: Certificate) -> None:
    probe, got = _reader_then_writer(echo, cert, SerialTLSSocket)
    assert got == [b"ok:hello"]  # the write went out while the reader waited; the answer reached it
    assert probe.peak == 1


def test_the_plain_ssl_socket_overlaps_them(echo: int, cert: Certificate) -> None:
    """What the above guards against, on Python's own socket (so the probe can tell)."""
    probe, got = _reader_then_writer(echo, cert, ssl.SSLSocket)
    assert got == [b"ok:hello"] and probe.peak == 2


def test_a_read_with_a_timeout_still_times_out(echo: int, cert: Certificate) -> None:
    ctx = serial_tls_context(cafile=str(cert.cert))
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", echo), timeout=10),
                         server_hostname="127.0.0.1") as sock:
        assert isinstance(sock, SerialTLSSocket)
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(1024)
        assert sock.gettimeout() == 0.3
        sock.sendall(b"x" * 3000)  # several records each way, read in pieces
        data = b""
        while data.count(b"x") < 3000:
            data += sock.recv(1024)
        assert data.replace(b"ok:", b"") == b"x" * 3000  # the server answers each piece it read


def test_openpi_remote_over_wss_uses_it(cert: Certificate, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(cert.cert))  # the server's certificate is the trust store
    kin = PandaKinematics()
    with FakeOpenPIServer(ssl_context=_ticketed(cert)) as srv:
        policy = OpenPIRemotePolicy(OpenPIRemoteParams(url=f"wss://127.0.0.1:{srv.port}"), kinematics=kin)
        policy.load()
        try:
            assert isinstance(policy._ws.socket, SerialTLSSocket)
            pos, quat = kin.forward(kin.home)
            obs = Observation(image=np.zeros((240, 320, 3), np.uint8), instruction="reach",
                              robot_state=RobotStateIn(pose=pos_quat_to_pose(pos, quat), gripper=-1.0))
            for _ in range(3):
                actions = policy.infer(obs)
                assert actions.shape == (10, 7) and np.isfinite(actions).all()
            assert len(srv.requests) == 3
        finally:
            policy.close()


def test_a_plain_ws_url_gets_no_tls() -> None:
    kin = PandaKinematics()
    with FakeOpenPIServer() as srv:
        policy = OpenPIRemotePolicy(OpenPIRemoteParams(url=f"ws://127.0.0.1:{srv.port}"), kinematics=kin)
        policy.load()
        try:
            assert not isinstance(policy._ws.socket, ssl.SSLSocket)
        finally:
            policy.close()
