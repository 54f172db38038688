"""`/v1/stream` conformance against the real service (uvicorn on a free 127.0.0.1 port, real
worker processes, a real websockets client): every message type, every bad input, auth, tiers
and close codes, frame dropping, EMA, safety, model failures and a worker SIGKILL mid-session."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from frankateach.constants import ROBOT_WORKSPACE_MAX
from tests.vla_service import (
    Service,
    auth_msg,
    frame_msg,
    frame_url,
    running_service,
    scripted,
)
from vla_server.registry import RegistryConfig
from vla_server.stream.config import StreamConfig

CENTRE = {"pose": [0.5, 0.0, 0.35, 3.14159, 0.0, 0.0], "velocity": [0.0] * 6}
MAX_BYTES = 96 * 1024

CATALOG = {
    "fixed": scripted("fixed", action=[0.5, 0, 0, 0, 0, 0, 1], fail_instruction="explode", nan_instruction="nan"),
    "steps": scripted("steps", sequence=[[1, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 1]]),
    "slow": scripted("slow", action=[0.1, 0, 0, 0, 0, 0, -1], infer_ms=300),
    "victim": scripted("victim", action=[0.2, 0, 0, 0, 0, 0, -1], infer_ms=100),
    "bystander": scripted("bystander", action=[0.3, 0, 0, 0, 0, 0, -1], infer_ms=50),
    "broken": scripted("broken", load_error="no weights here"),
}


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    stream = StreamConfig(max_message_bytes=MAX_BYTES, queue_max_size=2, auth_timeout_s=1.5)
    registry = RegistryConfig(max_models=6, health_interval_s=0.5, restart_backoff_s=0.3)
    with running_service(tmp_path_factory.mktemp("svc"), CATALOG, registry, stream) as s:
        yield s


def key(svc: Service, tier: str, admin: bool = False) -> str:
    """A fresh key (each test its own, so session limits do not interfere)."""
    return svc.keystore.create(f"{tier}-{time.monotonic_ns()}", tier, admin=admin)[1]


def recv(ws: ClientConnection, timeout: float = 10.0) -> dict[str, Any]:
    return json.loads(ws.recv(timeout=timeout))


def recv_type(ws: ClientConnection, kind: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        msg = recv(ws, max(0.01, deadline - time.monotonic()))
        if msg["type"] == kind:
            return msg


def closed_with(ws: ClientConnection) -> tuple[int, str]:
    with pytest.raises(ConnectionClosed) as info:
        while True:
            ws.recv(timeout=10)
    rcvd = info.value.rcvd
    assert rcvd is not None, "the server did not send a close frame"
    return rcvd.code, rcvd.reason


@contextlib.contextmanager
def opened(
    svc: Service, model: str, tier: str = "pro", **auth: Any
) -> Iterator[tuple[ClientConnection, dict[str, Any]]]:
    """An authenticated session: (connection, the `connected` message)."""
    with connect(svc.ws, open_timeout=10) as ws:
        ws.send(auth_msg(key(svc, tier), model, **auth))
        yield ws, recv(ws)


def roundtrip(ws: ClientConnection, **frame: Any) -> dict[str, Any]:
    ws.send(frame_msg(**frame))
    return recv_type(ws, "action")


def test_every_message_type(svc: Service) -> None:
    with opened(svc, "fixed", fps=10, enable_smoothing=False) as (ws, connected):
        assert set(connected) == {"type", "session_id", "status", "config"}
        assert connected["status"] == "ready" and connected["config"] == {
            "model": "fixed", "target_fps": 10.0, "smoothing": False, "safety": True}
        t0 = time.time()
        act = roundtrip(ws, robot_state=CENTRE)
        assert set(act) == {"type", "frame_id", "timestamp", "action", "safety_score", "latency_ms", "smoothed"}
        assert act["frame_id"] == 0 and act["action"] == [0.5, 0, 0, 0, 0, 0, 1] and act["smoothed"] is False
        assert act["safety_score"] == 1.0 and act["latency_ms"] > 0 and t0 - 1 < act["timestamp"] < time.time() + 1
        time.sleep(0.15)
        assert roundtrip(ws)["frame_id"] == 1
        ws.send('{"type":"stats"}')
        stats = recv(ws)
        assert list(stats) == ["type", "session_id", "runtime_seconds", "total_frames", "dropped_frames",
                               "drop_rate_percent", "target_fps", "actual_fps", "avg_latency_ms",
                               "frame_queue_size", "action_queue_size"]
        assert stats["session_id"] == connected["session_id"]
        assert (stats["total_frames"], stats["dropped_frames"], stats["target_fps"]) == (2, 0, 10.0)
        assert stats["actual_fps"] > 0 and stats["avg_latency_ms"] > 0 and stats["frame_queue_size"] == 0
        ws.send('{"type":"close"}')
        assert closed_with(ws)[0] == 1000


def test_every_bad_input_gets_an_error_and_the_session_stays_usable(svc: Service) -> None:
    with opened(svc, "fixed", tier="enterprise", fps=50) as (other, _), connect(svc.ws, open_timeout=10) as ws:
        ws.send(frame_msg())
        assert "frame before auth" in recv(ws)["message"]
        ws.send('{"type":"stats"}')
        assert "stats before auth" in recv(ws)["message"]
        ws.send(auth_msg(key(svc, "enterprise"), "fixed", fps=50))
        assert recv(ws)["type"] == "connected"
        jpeg = base64.b64decode(frame_url(160, 120).split(",", 1)[1])
        truncated = "data:image/jpeg;base64," + base64.b64encode(jpeg[: len(jpeg) // 2]).decode()
        bad = [
            ("{nope", "invalid JSON"),
            ('{"type":"teleport"}', "unknown message type 'teleport'"),
            ('{"type":"frame","instruction":"x"}', "missing required field(s) ['image']"),
            (frame_msg(instruction=["x"]), "frame.instruction: expected a string, got list"),
            (frame_msg(image="data:image/jpeg;base64,***"), "invalid base64"),
            (frame_msg(image="data:image/jpeg;base64,aGVsbG8="), "not a JPEG"),
            (frame_msg(image="data:image/gif;base64,R0lGOD"), "expected a data URL starting with"),
            (frame_msg(robot_state={"pose": [0.5, 0, 0.3, 0, 0]}), "expected a list of 6 numbers"),
            (
                frame_msg().rstrip("}") + ', "robot_state": {"pose": [0.5, 0, NaN, 0, 0, 0]}}',
                "expected a finite number",
            ),
            (
                json.dumps({"type": "frame", "image": "data:image/jpeg;base64," + "A" * MAX_BYTES, "instruction": "x"}),
                f"the limit is {MAX_BYTES} bytes",
            ),
            (auth_msg(key(svc, "pro"), "fixed"), "already authenticated"),
        ]
        for raw, text in bad:
            ws.send(raw)
            msg = recv(ws)
            assert msg["type"] == "error" and text in msg["message"], (raw[:60], msg)
            act = roundtrip(ws)  # still usable
            assert act["type"] == "action"
            time.sleep(0.03)
        ws.send(b"\x00\x01binary")
        assert "binary frame" in recv(ws)["message"]
        # a truncated JPEG passes the header check and fails at decode time, naming the frame
        ws.send(frame_msg(image=truncated))
        err = recv_type(ws, "error")
        assert "does not decode" in err["message"] and err["message"].startswith("frame ")
        assert roundtrip(ws)["type"] == "action"
        for _ in range(3):
            assert roundtrip(other, robot_state=CENTRE)["action"][0] == 0.5
            time.sleep(0.03)


@pytest.mark.parametrize(
    ("tier", "auth", "code", "text"),
    [
        ("bad-key", {}, 4001, "invalid or revoked API key"),
        ("free", {"model": "no-such-model"}, 4004, "unknown model 'no-such-model'"),
        ("free", {"fps": 11}, 4008, "exceeds the free tier's maximum of 10 Hz"),
        ("pro", {"fps": 31}, 4008, "pro tier's maximum of 30 Hz"),
        ("enterprise", {"fps": 51}, 4008, "maximum of 50 Hz"),
        ("free", {"robot_type": "ur5"}, 4005, "unsupported robot_type 'ur5'"),
    ],
)
def test_auth_refusals_send_an_error_then_a_close_code(
    svc: Service, tier: str, auth: dict, code: int, text: str
) -> None:
    api_key = "vla_0123456789ab_wrong" if tier == "bad-key" else key(svc, tier)
    model = auth.pop("model", "fixed")
    with connect(svc.ws, open_timeout=10) as ws:
        ws.send(auth_msg(api_key, model, **auth))
        err = recv(ws)
        assert err["type"] == "error" and text in err["message"]
        got_code, reason = closed_with(ws)
        assert got_code == code and text[:20] in reason


def test_revoked_key_and_auth_timeout(svc: Service) -> None:
    rec, api_key = svc.keystore.create(f"gone-{time.monotonic_ns()}", "pro")
    svc.keystore.revoke(rec.key_id)
    with connect(svc.ws, open_timeout=10) as ws:
        ws.send(auth_msg(api_key, "fixed"))
        assert recv(ws)["type"] == "error" and closed_with(ws)[0] == 4001
    with connect(svc.ws, open_timeout=10) as ws:
        err = recv(ws, timeout=5)  # auth_timeout_s = 1.5 in this service
        assert "no valid auth message within 1.5 s" in err["message"] and closed_with(ws)[0] == 4002


@pytest.mark.parametrize(("tier", "limit"), [("free", 1), ("pro", 3)])
def test_concurrent_session_limit_per_key(svc: Service, tier: str, limit: int) -> None:
    api_key = key(svc, tier)
    open_ws = []
    with contextlib.ExitStack() as stack:
        for _ in range(limit):
            ws = stack.enter_context(connect(svc.ws, open_timeout=10))
            open_ws.append(ws)
            ws.send(auth_msg(api_key, "fixed"))
            assert recv(ws)["type"] == "connected"
        with connect(svc.ws, open_timeout=10) as extra:
            extra.send(auth_msg(api_key, "fixed"))
            err = recv(extra)
            assert f"allows {limit} concurrent session" in err["message"]
            assert closed_with(extra)[0] == 4003
        assert roundtrip(open_ws[0])["type"] == "action"  # the open ones are unaffected
        open_ws.pop().close()
        time.sleep(0.3)
        with connect(svc.ws, open_timeout=10) as again:  # a slot is free again
            again.send(auth_msg(api_key, "fixed"))
            assert recv(again)["type"] == "connected"


def test_frames_beyond_target_fps_are_dropped_and_counted(svc: Service) -> None:
    with opened(svc, "fixed", fps=5) as (ws, _):
        frame = frame_msg()
        for _ in range(40):  # as fast as the socket takes them: far beyond 5 Hz
            ws.send(frame)
        time.sleep(0.5)
        ws.send('{"type":"stats"}')
        stats = recv_type(ws, "stats")
        assert stats["total_frames"] == 40 and stats["dropped_frames"] >= 35
        assert stats["drop_rate_percent"] == pytest.approx(100 * stats["dropped_frames"] / 40, abs=0.01)
        row = next(s for s in svc.get("/v1/sessions", svc.keys["free"]).json()["sessions"]
                   if s["session_id"] == stats["session_id"])
        assert row["dropped_rate"] >= 35 and row["tier"] == "pro" and row["target_fps"] == 5.0


def test_newest_frame_wins_while_the_model_is_busy(svc: Service) -> None:
    with opened(svc, "slow", fps=20) as (ws, _):  # 300 ms model, 20 Hz frames, queue of 2
        roundtrip(ws)  # warm
        frame = frame_msg()
        n = 30
        for _ in range(n - 1):  # ~20 Hz while the model is busy: most wait in the queue, or are pushed out
            ws.send(frame)
            time.sleep(0.05)
        # The newest frame goes once the service has taken every frame before it (its stats reply
        # comes after them) and its token bucket has refilled (3 frame periods), so it is admitted
        # however a loaded machine bunched the earlier frames on arrival.
        ws.send('{"type":"stats"}')
        actions: list[int] = []
        while (msg := recv(ws))["type"] != "stats":
            if msg["type"] == "action":
                actions.append(msg["frame_id"])
        time.sleep(0.15)
        ws.send(frame)
        while not actions or actions[-1] != n:  # frame ids count from the warm-up frame (0)
            msg = recv(ws)
            if msg["type"] == "action":
                actions.append(msg["frame_id"])
        assert actions == sorted(actions) and len(actions) < n / 2
        ws.send('{"type":"stats"}')
        stats = recv_type(ws, "stats")
        assert stats["total_frames"] == n + 1
        assert stats["dropped_frames"] == stats["total_frames"] - (len(actions) + 1)
        row = next(s for s in svc.get("/v1/sessions", svc.keys["free"]).json()["sessions"]
                   if s["session_id"] == stats["session_id"])
        assert row["dropped_stale"] > 0 and row["dropped_queue"] > 0
        assert row["dropped_stale"] + row["dropped_queue"] + row["dropped_rate"] == stats["dropped_frames"]


def test_ema_smoothing_over_the_wire(svc: Service) -> None:
    with opened(svc, "steps", fps=30, enable_smoothing=True, smoothing_alpha=0.5) as (ws, connected):
        assert connected["config"]["smoothing"] is True
        xs = []
        for _ in range(4):
            act = roundtrip(ws)
            assert act["smoothed"] is True
            xs.append(act["action"][0])
            time.sleep(0.04)
        assert xs == pytest.approx([1.0, 0.5, 0.75, 0.375])  # raw 1, 0, 1, 0 with alpha 0.5
    with opened(svc, "steps", fps=30, enable_smoothing=False) as (ws, _):
        raw = []
        for _ in range(2):
            act = roundtrip(ws)
            raw.append((act["action"][0], act["smoothed"]))
            time.sleep(0.04)
        assert raw == [(1.0, False), (0.0, False)]


def test_safety_score_over_the_wire(svc: Service) -> None:
    edge = {"pose": [float(ROBOT_WORKSPACE_MAX[0]), 0.0, 0.35, 3.14159, 0.0, 0.0]}
    with opened(svc, "fixed", fps=10) as (ws, _):
        assert roundtrip(ws, robot_state=CENTRE)["safety_score"] == 1.0
        time.sleep(0.12)
        # +0.5 full step (0.0375 m) out of the box at its +x edge: workspace factor 1 - 0.0375/0.05
        assert roundtrip(ws, robot_state=edge)["safety_score"] == pytest.approx(0.25)
        time.sleep(0.12)
        nan = roundtrip(ws, instruction="nan please", robot_state=CENTRE)
        assert nan["safety_score"] == 0.0 and nan["action"] == [0, 0, 0, 0, 0, 0, 1.0]  # hold, gripper kept
    with opened(svc, "fixed", fps=10, enable_safety=False) as (ws, _):
        assert roundtrip(ws, robot_state=edge)["safety_score"] == 1.0


def test_model_errors_fail_only_that_frame(svc: Service) -> None:
    with opened(svc, "fixed", fps=10) as (ws, _):
        ws.send(frame_msg(instruction="explode now"))
        err = recv(ws)
        assert err["type"] == "error" and err["message"].startswith("frame 0:") and "scripted failure" in err["message"]
        time.sleep(0.12)
        assert roundtrip(ws)["frame_id"] == 1
    with opened(svc, "broken", fps=10) as (ws, _):
        ws.send(frame_msg())
        err = recv(ws)
        assert "no weights here" in err["message"]


@pytest.mark.slow
def test_worker_sigkill_mid_session(svc: Service) -> None:
    stop = threading.Event()
    seen: dict[str, list[dict[str, Any]]] = {"victim": [], "bystander": []}

    def stream(name: str, ws: ClientConnection) -> None:
        frame = frame_msg()
        while not stop.is_set():
            ws.send(frame)
            deadline = time.monotonic() + 0.1
            while time.monotonic() < deadline:
                try:
                    seen[name].append(recv(ws, timeout=max(0.001, deadline - time.monotonic())))
                except TimeoutError:
                    break

    with opened(svc, "victim", fps=10) as (victim, _), opened(svc, "bystander", fps=10) as (bystander, _):
        threads = [threading.Thread(target=stream, args=(n, w), daemon=True)
                   for n, w in (("victim", victim), ("bystander", bystander))]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20  # both models warm and answering
        while not all(any(m["type"] == "action" for m in seen[n]) for n in seen) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        pid = svc.model("victim")["pid"]
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        killed_at = len(seen["victim"])
        time.sleep(2.5)
        stop.set()
        for t in threads:
            t.join(timeout=5)
    after = seen["victim"][killed_at:]
    errors = [m["message"] for m in after if m["type"] == "error"]
    assert any("killed by SIGKILL" in e and "restarting" in e for e in errors), errors
    assert any(m["type"] == "action" for m in after[[m["type"] for m in after].index("error"):]), "no recovery"
    assert not [m for m in seen["bystander"] if m["type"] == "error"]
    assert sum(m["type"] == "action" for m in seen["bystander"]) >= 20
    model = svc.model("victim")
    assert model["pid"] != pid and model["state"] == "warm" and model["stats"]["crashes"] == 1


def test_http_models_and_sessions(svc: Service) -> None:
    reader, admin = svc.keys["free"], svc.keys["admin"]
    assert svc.get("/health").json()["status"] == "ok"
    assert svc.get("/v1/models").status_code == 401
    body = svc.get("/v1/models", reader).json()
    assert {m["id"] for m in body["models"]} == set(CATALOG) and body["registry"]["eviction"] == "lru"
    assert svc.post("/v1/models/bystander/unload", reader).status_code == 403
    assert svc.post("/v1/models/nope/load", admin).status_code == 404
    st = svc.post("/v1/models/bystander/load", admin).json()
    assert st["state"] == "warm" and st["memory_mb"] > 0 and st["pid"]
    assert svc.post("/v1/models/bystander/pin", admin).json()["pinned"] is True
    assert svc.post("/v1/models/bystander/unpin", admin).json()["pinned"] is False
    assert svc.post("/v1/models/bystander/unload", admin).json()["state"] == "cold"
    r = svc.post("/v1/models/broken/load", admin)
    assert r.status_code == 502 and "no weights here" in r.json()["detail"]
    stats = svc.get("/v1/models/fixed/stats", reader).json()
    for k in ("requests", "failures", "latency_p50_ms", "latency_p95_ms", "loads", "evictions", "cold_start_ms"):
        assert k in stats
    with opened(svc, "fixed", fps=10) as (ws, connected):
        roundtrip(ws)
        rows = svc.get("/v1/sessions", reader).json()["sessions"]
        row = next(r for r in rows if r["session_id"] == connected["session_id"])
        assert row["model"] == "fixed" and row["tier"] == "pro" and row["actions"] == 1
        assert row["target_fps"] == 10.0 and row["latency_p50_ms"] > 0
    time.sleep(0.3)
    ids = [r["session_id"] for r in svc.get("/v1/sessions", reader).json()["sessions"]]
    assert connected["session_id"] not in ids
