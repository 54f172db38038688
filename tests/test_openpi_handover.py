"""openpi connections handed to the model's worker (``vla-server serve`` on loopback, real worker
processes, a client as openpi-client speaks): the worker serves them itself, and the service still
rules them — a killed worker closes them with the reason (the service lives on and serves the next
connection), an unload closes them with 1001 and the model loads again for the next one, SIGTERM
closes them with 1001, a key's connections share its rate, a client that sends before reading the
metadata is still answered in order. Plus the parts: the FIFO policy gate and the hand-over channel.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from robot_formats.openpi_codec import packb, unpackb
from tests.vla_serve_process import (
    ServeProcess,
    droid_obs,
    openpi_connect,
    openpi_infer,
    serve_process,
    write_catalog,
)
from vla_server.constants import RATE_BURST_FRAMES
from vla_server.workers import handover
from vla_server.workers.gate import PolicyGate

WAIT_S = 30.0  # generous bounds for a loaded machine; no test depends on them being tight


ARM = "  - {id: arm, backend: scripted, params: {horizon: 2}}\n"
CATALOG = ARM + "  - {id: slow, backend: scripted, params: {horizon: 2, infer_ms: 40}}\n"


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    tmp = tmp_path_factory.mktemp("handover")
    with serve_process(tmp, write_catalog(tmp / "models.yaml", CATALOG), "--no-web", "--no-arena") as s:
        yield s


@contextmanager
def own_service(tmp_path: Path) -> Iterator[ServeProcess]:
    """A service of the test's own (one it stops, or looks at whole), serving `arm` only."""
    with serve_process(tmp_path, write_catalog(tmp_path / "models.yaml", ARM), "--no-web", "--no-arena") as s:
        yield s


@pytest.fixture(scope="module")
def admin(svc: ServeProcess) -> str:
    return svc.new_key("handover-admin", "enterprise", admin=True)


def model_status(svc: ServeProcess, admin: str) -> dict:
    r = httpx.get(svc.http + "/v1/models/arm", headers={"Authorization": f"Bearer {admin}"}, timeout=WAIT_S)
    r.raise_for_status()
    return r.json()


def text_then_close(ws: ClientConnection) -> tuple[str, int | None]:
    """What the server sends after a request is answered: (error text, close code)."""
    text = ws.recv(timeout=WAIT_S)
    assert isinstance(text, str), f"expected the error text, got {type(text).__name__}"
    with pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=WAIT_S)
    return text, closed.value.rcvd.code if closed.value.rcvd else None


def test_a_killed_worker_closes_its_connections_with_the_reason_and_the_service_lives_on(
        svc: ServeProcess, admin: str) -> None:
    key = svc.new_key("killed", "pro")
    assert svc.openpi_port is not None
    ws, _ = openpi_connect(svc.openpi_port, key)
    with ws:
        assert openpi_infer(ws, droid_obs())["actions"].shape == (2, 7)
        pid = model_status(svc, admin)["pid"]
        assert pid is not None and pid != svc.pid
        os.kill(pid, signal.SIGKILL)
        text, code = text_then_close(ws)  # the worker served it: the connection ends with the worker
    assert "model 'arm' worker killed by SIGKILL" in text and code == 1011
    assert svc.proc.poll() is None
    again, _ = openpi_connect(svc.openpi_port, key, timeout_s=WAIT_S)  # waits for the restart; the new worker serves
    with again:
        assert openpi_infer(again, droid_obs())["actions"].shape == (2, 7)
    assert model_status(svc, admin)["pid"] not in (None, pid)


def test_unloading_the_model_closes_its_connections_and_the_next_one_loads_it(svc: ServeProcess, admin: str) -> None:
    key = svc.new_key("unloaded", "pro")
    assert svc.openpi_port is not None
    ws, _ = openpi_connect(svc.openpi_port, key)
    with ws:
        assert openpi_infer(ws, droid_obs())["actions"].shape == (2, 7)
        r = httpx.post(svc.http + "/v1/models/arm/unload", headers={"Authorization": f"Bearer {admin}"},
                       timeout=WAIT_S)
        assert r.status_code == 200 and r.json()["state"] == "cold"
        text, code = text_then_close(ws)
    assert "model 'arm' was unloaded; connect again" in text and code == 1001
    again, _ = openpi_connect(svc.openpi_port, key, timeout_s=WAIT_S)
    with again:
        assert openpi_infer(again, droid_obs())["actions"].shape == (2, 7)
    assert model_status(svc, admin)["state"] == "warm"


def test_a_keys_connections_share_its_rate(svc: ServeProcess) -> None:
    key = svc.new_key("shared-rate", "pro")  # 30 Hz across the key's connections
    assert svc.openpi_port is not None
    n = 20
    conns = [openpi_connect(svc.openpi_port, key)[0] for _ in range(2)]
    errors: list[BaseException] = []

    def run(ws: ClientConnection) -> None:
        try:
            for _ in range(n):
                openpi_infer(ws, droid_obs())
        except BaseException as exc:  # noqa: BLE001 -- reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(ws,)) for ws in conns]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    elapsed = time.monotonic() - t0
    for ws in conns:
        ws.close()
    assert not errors, errors
    # at most RATE_BURST_FRAMES early: two connections together are held to the key's 30 Hz
    assert elapsed >= (2 * n - RATE_BURST_FRAMES) / 30.0 - 0.05, f"{2 * n} requests in {elapsed:.2f} s at 30 Hz"


def test_tenants_take_turns_at_a_slow_model_and_a_revoked_key_is_closed_mid_request(svc: ServeProcess) -> None:
    """Three connections of one key and one of another share a 40 ms model (run off the worker's
    loop): each key gets about half of its time (in arrival order the first would get three
    quarters); revoking the first key closes its connections while their requests run."""
    busy, other = svc.new_key("busy", "enterprise"), svc.new_key("other", "enterprise")
    assert svc.openpi_port is not None
    conns = [("busy", openpi_connect(svc.openpi_port, busy, query="?model=slow")[0]) for _ in range(3)]
    conns.append(("other", openpi_connect(svc.openpi_port, other, query="?model=slow")[0]))
    counts = {"busy": 0, "other": 0}
    closed: dict[str, list[tuple[str, int | None]]] = {"busy": [], "other": []}
    counting, stop = threading.Event(), threading.Event()
    lock = threading.Lock()

    def drive(name: str, ws: ClientConnection) -> None:
        try:
            while not stop.is_set():
                ws.send(packb(droid_obs()))
                reply = ws.recv(timeout=WAIT_S)
                if isinstance(reply, str):  # the error text; the close follows
                    with pytest.raises(ConnectionClosed) as info:
                        ws.recv(timeout=WAIT_S)
                    closed[name].append((reply, info.value.rcvd.code if info.value.rcvd else None))
                    return
                if counting.is_set():
                    with lock:
                        counts[name] += 1
        except ConnectionClosed as exc:
            closed[name].append(("", exc.rcvd.code if exc.rcvd else None))

    threads = [threading.Thread(target=drive, args=c, daemon=True) for c in conns]
    for t in threads:
        t.start()
    time.sleep(1.0)  # everyone queued
    counting.set()
    time.sleep(4.0)
    counting.clear()
    assert counts["busy"] > 10 and counts["other"] > 10, counts
    share = counts["other"] / (counts["busy"] + counts["other"])
    assert share > 0.38, f"the one-connection key got {share:.0%} of the model: {counts}"
    svc.cli("keys", "revoke", "busy")
    for t in threads[:3]:
        t.join(timeout=WAIT_S)
    assert [c[1] for c in closed["busy"]] == [4001] * 3, closed
    assert all("API key revoked" in text for text, _ in closed["busy"]), closed
    stop.set()
    threads[3].join(timeout=WAIT_S)
    assert closed["other"] == [] and not any(t.is_alive() for t in threads)
    for _, ws in conns:
        ws.close()


def test_a_client_sending_before_the_metadata_is_answered_in_order(svc: ServeProcess) -> None:
    key = svc.new_key("eager", "pro")
    with connect(f"ws://127.0.0.1:{svc.openpi_port}/", additional_headers={"Authorization": f"Api-Key {key}"},
                 open_timeout=WAIT_S, compression=None, max_size=None) as ws:
        ws.send(packb(droid_obs()))
        ws.send(packb(droid_obs(seed=1)))
        meta = unpackb(ws.recv(timeout=WAIT_S))
        assert meta["model"] == "arm"
        for _ in range(2):
            assert unpackb(ws.recv(timeout=WAIT_S))["actions"].shape == (2, 7)


def test_sigterm_closes_handed_over_connections_with_1001(tmp_path: Path) -> None:
    with own_service(tmp_path) as svc:
        key = svc.new_key("stopping", "pro")
        assert svc.openpi_port is not None
        ws, _ = openpi_connect(svc.openpi_port, key)
        with ws:
            assert openpi_infer(ws, droid_obs())["actions"].shape == (2, 7)
            svc.proc.send_signal(signal.SIGTERM)
            text, code = text_then_close(ws)
        assert svc.proc.wait(timeout=WAIT_S) == 0
    assert "server shutting down" in text and code == 1001


def test_the_service_maps_no_numpy_while_its_worker_serves_openpi(tmp_path: Path) -> None:
    """The service only admits and hands over: numpy, Pillow and the codec stay in the worker
    (the service's memory against openpi's own server, `bench_openpi.py --reference`)."""
    with own_service(tmp_path) as svc:
        key = svc.new_key("lean", "pro")
        assert svc.openpi_port is not None
        ws, meta = openpi_connect(svc.openpi_port, key)
        with ws:
            assert meta["model"] == "arm" and "observation/image" in meta["image_keys"]
            for seed in range(3):
                assert openpi_infer(ws, droid_obs(seed=seed))["actions"].shape == (2, 7)
        listing = httpx.get(svc.http + "/v1/sessions", headers={"Authorization": f"Bearer {key}"}, timeout=WAIT_S)
        assert listing.status_code == 200
        maps = Path(f"/proc/{svc.pid}/maps").read_text()
        loaded = sorted({line.rsplit("/", 2)[-2] for line in maps.splitlines()
                         if "/site-packages/" in line and ("numpy" in line or "PIL" in line)})
        assert loaded == [], f"the service mapped {loaded}"


# ---- the parts ------------------------------------------------------------------------------------


def _until_waiting(gate: PolicyGate, n: int) -> None:
    deadline = time.monotonic() + WAIT_S
    while gate.waiting < n:
        assert time.monotonic() < deadline, f"{gate.waiting} waiting, expected {n}"
        time.sleep(0.005)


def test_the_policy_gate_gives_turns_in_arrival_order() -> None:
    gate = PolicyGate()
    order: list[str] = []
    assert gate.try_enter() and not gate.try_enter()

    def thread_waiter(name: str) -> None:
        gate.enter()
        order.append(name)
        gate.leave()

    loop_errors: list[BaseException | None] = []

    def loop_waiter() -> None:
        async def main() -> None:
            await gate.enter_async()
            order.append("loop")
            gate.leave()
        try:
            asyncio.run(main())
            loop_errors.append(None)
        except BaseException as exc:  # noqa: BLE001 -- reported below
            loop_errors.append(exc)

    threads = [threading.Thread(target=thread_waiter, args=("a",)), threading.Thread(target=loop_waiter),
               threading.Thread(target=thread_waiter, args=("c",))]
    for k, t in enumerate(threads, start=1):
        t.start()
        _until_waiting(gate, k)  # queued in this order, behind the holder
    assert order == [] and not gate.try_enter()
    gate.leave()
    for t in threads:
        t.join(timeout=WAIT_S)
    assert loop_errors == [None] and order == ["a", "loop", "c"]
    assert gate.waiting == 0 and gate.try_enter()  # free again


def test_the_handover_channel_carries_a_socket_and_refuses_garbage() -> None:
    service, worker = handover.channel()
    left, right = socket.socketpair()
    with service, worker, left, right:
        service.setblocking(False)
        worker.setblocking(False)
        handover.send(service, {"op": "adopt", "session": "s1"}, [left.fileno()])
        got = handover.receive(worker)
        assert got is not None
        msg, fds = got
        assert msg == {"op": "adopt", "session": "s1"} and len(fds) == 1
        with socket.socket(fileno=fds[0]) as passed:
            passed.sendall(b"over the handed socket")
            assert right.recv(100) == b"over the handed socket"
        assert handover.receive(worker) is None  # nothing waits
        service.send(b"\xc1not msgpack")
        with pytest.raises(handover.HandoverError):
            handover.receive(worker)
        service.send(packb([1, 2]))
        with pytest.raises(handover.HandoverError, match="string 'op'"):
            handover.receive(worker)
        service.close()
        assert handover.receive(worker) == (None, [])  # EOF
