"""The service's openpi endpoint as a tenant meets it (``vla-server serve`` on loopback): its
connections count against the key's tier (sessions, shared with `/v1/stream`, and request rate),
they are listed in ``GET /v1/sessions`` for their own key, error texts carry no doubled prefix, a
bad observation is reported as one, and an image over the pixel budget never reaches the model.

Seen cases (issue 17): 4 — a Free key (1 session, 10 Hz) ran 5 concurrent openpi sessions at
1,262 req/s; 6 — "Error in inference server:" twice, a bad observation reported as "model …
failed".
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.vla_serve_process import (
    ServeProcess,
    droid_obs,
    openpi_connect,
    openpi_infer,
    scripted_service,
)
from tests.vla_service import auth_msg
from vla_server.auth.pacing import RequestPacer
from vla_server.constants import MAX_FRAME_PIXELS, RATE_BURST_FRAMES


@pytest.fixture(scope="module", params=["handed-to-worker", "in-service"])
def svc(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """The service as configured by default (connections handed to the model's worker) and with
    ``--no-openpi-handover`` (every request through the service)."""
    tmp = tmp_path_factory.mktemp("openpi-endpoint")
    extra = ("--no-openpi-handover",) if request.param == "in-service" else ()
    with scripted_service(tmp, "--no-web", "--no-arena", *extra) as s:
        yield s


def test_a_free_key_holds_one_session_across_both_endpoints(svc: ServeProcess) -> None:
    key = svc.new_key("free-1", "free")
    assert svc.openpi_port is not None
    with contextlib.ExitStack() as stack:
        first, _ = openpi_connect(svc.openpi_port, key)
        stack.enter_context(first)
        for _ in range(4):  # the seen case opened 5
            with pytest.raises(InvalidStatus) as info:
                openpi_connect(svc.openpi_port, key)
            assert info.value.response.status_code == 429
            assert b"allows 1 concurrent session" in info.value.response.body
        stream = stack.enter_context(connect(svc.ws, open_timeout=10))
        stream.send(auth_msg(key, "arm", fps=10))
        err = json.loads(stream.recv(timeout=30))
        assert err["type"] == "error" and "allows 1 concurrent session" in err["message"]
        assert openpi_infer(first, droid_obs())["actions"].shape == (2, 7)
    time.sleep(0.5)
    again, _ = openpi_connect(svc.openpi_port, key)  # the slot is free once the first one closed
    again.close()


def test_requests_are_paced_to_the_tier_rate(svc: ServeProcess) -> None:
    key = svc.new_key("free-rate", "free")  # 10 Hz
    assert svc.openpi_port is not None
    n = 25
    ws, _ = openpi_connect(svc.openpi_port, key)
    with ws:
        t0 = time.monotonic()
        for _ in range(n):
            openpi_infer(ws, droid_obs())
        elapsed = time.monotonic() - t0
    # at most RATE_BURST_FRAMES early: whatever the machine's speed, n requests take this long
    assert elapsed >= (n - RATE_BURST_FRAMES) / 10.0 - 0.05, f"{n} requests in {elapsed:.2f} s at 10 Hz"


def test_sessions_listing_shows_a_key_only_its_own(svc: ServeProcess) -> None:
    mine, theirs = svc.new_key("list-a", "pro"), svc.new_key("list-b", "pro")
    admin = svc.new_key("list-admin", "enterprise", admin=True)
    assert svc.openpi_port is not None
    with contextlib.ExitStack() as stack:
        a, _ = openpi_connect(svc.openpi_port, mine)
        stack.enter_context(a)
        b = stack.enter_context(connect(svc.ws, open_timeout=10))
        b.send(auth_msg(theirs, "arm", fps=10))
        assert json.loads(b.recv(timeout=30))["type"] == "connected"

        def listing(key: str) -> list[dict]:
            r = httpx.get(svc.http + "/v1/sessions", headers={"Authorization": f"Bearer {key}"}, timeout=30)
            return r.json()["sessions"]

        assert [(s["key_name"], s["endpoint"]) for s in listing(mine)] == [("list-a", "openpi")]
        assert [(s["key_name"], s["endpoint"]) for s in listing(theirs)] == [("list-b", "stream")]
        assert {s["key_name"] for s in listing(admin)} >= {"list-a", "list-b"}


def test_error_texts_have_one_prefix_and_name_the_bad_observation(svc: ServeProcess) -> None:
    key = svc.new_key("errors", "pro")
    assert svc.openpi_port is not None
    ws, _ = openpi_connect(svc.openpi_port, key)
    with ws, pytest.raises(RuntimeError) as info:
        openpi_infer(ws, {"observation/image": np.zeros((4, 4), np.uint8), "prompt": "x"})
    text = str(info.value)
    assert text.count("Error in inference server") == 1, text
    assert "bad observation" in text and "observation/image" in text and "failed" not in text


def test_an_image_over_the_pixel_budget_is_refused_before_the_model(svc: ServeProcess) -> None:
    key = svc.new_key("big-pixels", "pro")
    assert svc.openpi_port is not None
    admin = svc.new_key("big-pixels-admin", "enterprise", admin=True)
    before = httpx.get(svc.http + "/v1/models/arm", headers={"Authorization": f"Bearer {admin}"},
                       timeout=30).json()["stats"]["requests"]
    ws, _ = openpi_connect(svc.openpi_port, key)
    with ws, pytest.raises(RuntimeError) as info:
        openpi_infer(ws, droid_obs(width=1400, height=1000))
    assert "bad observation" in str(info.value) and str(MAX_FRAME_PIXELS) in str(info.value)
    after = httpx.get(svc.http + "/v1/models/arm", headers={"Authorization": f"Bearer {admin}"},
                      timeout=30).json()["stats"]["requests"]
    assert after == before


def test_pacer_books_requests_on_a_grid() -> None:
    now = [0.0]
    pacer = RequestPacer(burst=2.0, clock=lambda: now[0])
    assert [pacer.delay("k", 10.0) for _ in range(2)] == [0.0, 0.0]  # the burst
    assert pacer.delay("k", 10.0) == pytest.approx(0.1)
    assert pacer.delay("other", 10.0) == 0.0  # keys are paced apart
    now[0] = 10.0
    assert pacer.delay("k", 10.0) == 0.0  # idle time refills
    pacer.forget("k")
    with pytest.raises(ValueError, match="rate_hz"):
        pacer.delay("k", 0.0)
