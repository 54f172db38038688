"""Live feeds (/v1/live/models, /v1/live/sessions): server-sent events from the real service.

A model loaded through the API shows up in the models feed as loading then warm; a /v1/stream
session appears in the sessions feed and disappears when it closes; feeds need a key and end when
the service stops accepting sessions (shutdown).
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.web_browser import Service, run_service

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with run_service(tmp_path_factory.mktemp("live")) as svc:
        yield svc


class Feed:
    """Reads one SSE stream in a thread; events land in `events` as (monotonic t, name, data)."""

    def __init__(self, url: str, key: str) -> None:
        self.events: queue.Queue[tuple[float, str, Any]] = queue.Queue()
        self.ended = threading.Event()
        self._client = httpx.Client(timeout=httpx.Timeout(10.0, read=30.0))
        self._ctx = self._client.stream("GET", url, headers={"Authorization": f"Bearer {key}"})
        self.response = self._ctx.__enter__()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        name, data = "message", []
        try:
            for line in self.response.iter_lines():
                if line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
                elif line == "" and data:
                    self.events.put((time.monotonic(), name, json.loads("\n".join(data))))
                    name, data = "message", []
        except httpx.HTTPError:
            pass
        finally:
            self.ended.set()

    def next_matching(self, pred: Any, timeout_s: float) -> tuple[float, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no matching event in time")
            t, _, data = self.events.get(timeout=left)
            if pred(data):
                return t, data

    def close(self) -> None:
        self._ctx.__exit__(None, None, None)
        self._client.close()


def _state(data: dict[str, Any], model: str) -> str:
    return next(m["state"] for m in data["models"] if m["id"] == model)


def test_feeds_need_a_key(service: Service) -> None:
    for path in ("/v1/live/models", "/v1/live/sessions"):
        assert httpx.get(service.url + path).status_code == 401


def test_models_feed_follows_a_load_and_an_unload(service: Service) -> None:
    feed = Feed(service.url + "/v1/live/models", service.reader_key)
    try:
        assert feed.response.status_code == 200 and feed.response.headers["content-type"].startswith(
            "text/event-stream"
        )
        _, first = feed.next_matching(lambda d: True, 5)
        assert _state(first, "scripted-slow") == "cold" and "memory_budget_mb" in first["registry"]
        h = {"Authorization": f"Bearer {service.admin_key}"}
        done = threading.Event()

        def load() -> None:
            httpx.post(f"{service.url}/v1/models/scripted-slow/load", headers=h, timeout=60)
            done.set()

        threading.Thread(target=load, daemon=True).start()
        feed.next_matching(lambda d: _state(d, "scripted-slow") == "loading", 5)
        _, warm = feed.next_matching(lambda d: _state(d, "scripted-slow") == "warm", 30)
        assert done.wait(10)
        assert warm["registry"]["memory_used_mb"] > 0
        r = httpx.post(f"{service.url}/v1/models/scripted-slow/unload", headers=h, timeout=60)
        assert r.status_code == 200 and r.json()["state"] == "cold"
        feed.next_matching(lambda d: _state(d, "scripted-slow") == "cold", 5)  # latency: benchmarks/bench_web.py
    finally:
        feed.close()


def test_sessions_feed_sees_a_session_open_and_close(service: Service) -> None:
    from websockets.sync.client import connect

    feed = Feed(service.url + "/v1/live/sessions", service.admin_key)
    try:
        _, first = feed.next_matching(lambda d: True, 5)
        assert first["count"] == 0
        with connect(service.url.replace("http://", "ws://") + "/v1/stream", open_timeout=10) as ws:
            ws.send(
                json.dumps(
                    {
                        "type": "auth",
                        "api_key": service.admin_key,
                        "model": "scripted-slow",
                        "robot_type": "franka_panda",
                        "target_fps": 5,
                        "enable_smoothing": False,
                        "enable_safety": False,
                    }
                )
            )
            sid = json.loads(ws.recv(timeout=30))["session_id"]
            _, seen = feed.next_matching(lambda d: any(s["session_id"] == sid for s in d["sessions"]), 5)
            assert seen["sessions"][0]["key_name"] == "ui-admin"
            ws.send(json.dumps({"type": "close"}))
        feed.next_matching(lambda d: d["count"] == 0, 5)
    finally:
        feed.close()


def test_feeds_end_when_the_service_stops_accepting(service: Service, tmp_path: Path) -> None:
    feed = Feed(service.url + "/v1/live/sessions", service.reader_key)
    sessions = service.app.state.sessions
    try:
        feed.next_matching(lambda d: True, 5)
        sessions.accepting = False  # what close_all() does first at shutdown
        assert feed.ended.wait(3), "the feed did not end"
    finally:
        sessions.accepting = True
        feed.close()
