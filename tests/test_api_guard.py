"""`RequestGuard` against ``vla-server serve`` on loopback: bodies are bounded before they are read
and writing requests need a key before their body is parsed.

Seen case (issue 17, 1): two unauthenticated 400 MiB JSON bodies posted at once to
``/v1/arena/episodes`` were read and parsed whole before the key was checked (peak RSS
226 → 2,186 MiB, then 401). Here: 401/413 at once, the service's peak RSS (VmHWM) barely moves.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.vla_serve_process import HOST, ServeProcess, scripted_service, status_kib
from vla_server.api.guard import BodyLimits
from vla_server.constants import MAX_JSON_BODY_BYTES

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    tmp = tmp_path_factory.mktemp("guard")
    with scripted_service(tmp, "--no-web", "--arena-executor", "inline", openpi=False) as s:
        s.admin = s.new_key("ops", "enterprise", admin=True)  # type: ignore[attr-defined]
        yield s


def _post_raw(port: int, path: str, body_bytes: int, headers: dict[str, str], chunked: bool = False) -> tuple[int, int]:
    """Sends a POST of `body_bytes` zero-ish JSON bytes over a raw socket, stopping when the server
    answers or closes; returns (HTTP status, body bytes actually sent)."""
    sock = socket.create_connection((HOST, port), timeout=30)
    head = f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head += "Transfer-Encoding: chunked\r\n\r\n" if chunked else f"Content-Length: {body_bytes}\r\n\r\n"
    sock.sendall(head.encode())
    chunk = b'{"a":"' + b"x" * (MIB - 16) + b'"}  '
    sent = 0
    sock.setblocking(False)
    reply = b""
    try:
        while sent < body_bytes:
            try:
                reply += sock.recv(65536)
                if reply:
                    break
            except BlockingIOError:
                pass
            part = chunk[: min(len(chunk), body_bytes - sent)]
            data = (f"{len(part):x}\r\n".encode() + part + b"\r\n") if chunked else part
            try:
                sock.setblocking(True)
                sock.settimeout(30)
                sock.sendall(data)
                sock.setblocking(False)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(part)
        sock.setblocking(True)
        sock.settimeout(30)
        while b"\r\n" not in reply:
            more = sock.recv(65536)
            if not more:
                break
            reply += more
    finally:
        sock.close()
    assert reply.startswith(b"HTTP/1.1 "), reply[:200]
    return int(reply.split()[1]), sent


def test_huge_unauthenticated_bodies_are_refused_before_reading(svc: ServeProcess) -> None:
    peak_before = status_kib(svc.pid, "VmHWM")
    results: list[tuple[int, int]] = []

    def attack() -> None:
        results.append(_post_raw(svc.port, "/v1/arena/episodes", 400 * MIB, {}))

    threads = [threading.Thread(target=attack) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert [r[0] for r in results] == [413, 413]
    assert all(sent < 100 * MIB for _, sent in results), results  # cut off, not read to the end
    grew_mib = (status_kib(svc.pid, "VmHWM") - peak_before) / 1024
    assert grew_mib < 50, f"service peak RSS grew {grew_mib:.0f} MiB"


def test_a_streamed_body_without_length_is_cut_at_the_limit(svc: ServeProcess) -> None:
    peak_before = status_kib(svc.pid, "VmHWM")
    code, sent = _post_raw(svc.port, "/v1/arena/episodes", 200 * MIB, {"Authorization": f"Bearer {svc.admin}"},
                           chunked=True)  # type: ignore[attr-defined]
    assert code == 413 and sent < 100 * MIB
    assert (status_kib(svc.pid, "VmHWM") - peak_before) / 1024 < 50


def test_writes_need_a_key_before_the_body_is_parsed(svc: ServeProcess) -> None:
    r = httpx.post(svc.http + "/v1/arena/episodes", content=b"{not json", timeout=30,
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 401 and "missing API key" in r.json()["detail"]  # not 422: never parsed
    r = httpx.post(svc.http + "/v1/models/arm/load", headers={"Authorization": "Bearer vla_0123456789ab_nope"},
                   timeout=30)
    assert r.status_code == 401 and "invalid or revoked" in r.json()["detail"]


def test_an_admin_body_over_the_limit_gets_413_and_a_normal_one_works(svc: ServeProcess) -> None:
    admin = {"Authorization": f"Bearer {svc.admin}"}  # type: ignore[attr-defined]
    big = json.dumps({"model": "arm", "pad": "x" * (MAX_JSON_BODY_BYTES + 10)})
    r = httpx.post(svc.http + "/v1/arena/episodes", content=big, headers=admin, timeout=30)
    assert r.status_code == 413 and str(MAX_JSON_BODY_BYTES) in r.json()["detail"]
    r = httpx.post(svc.http + "/v1/models/arm/load", headers=admin, timeout=60)
    assert r.status_code == 200 and r.json()["state"] == "warm"
    r = httpx.post(svc.http + "/v1/arena/episodes", json={"model": "nope"}, headers=admin, timeout=30)
    assert r.status_code in (400, 422)  # parsed and judged by the route, as before


def test_body_limits_pick_the_longest_prefix() -> None:
    limits = BodyLimits(default=100, routes={"/v1/": 50, "/v1/upload": 5000})
    assert limits.limit_for("/ui/") == 100
    assert limits.limit_for("/v1/models") == 50
    assert limits.limit_for("/v1/upload/x") == 5000
    with pytest.raises(ValueError, match="expected an integer >= 0"):
        BodyLimits(default=-1)


def test_write_paths_outside_the_api_are_bounded_too(tmp_path: Path, svc: ServeProcess) -> None:
    code, sent = _post_raw(svc.port, "/ui/anything", 300 * MIB, {})
    assert code == 413 and sent < 100 * MIB
