"""The web UI end to end in headless Chromium against the real service (`create_app`, real workers).

Models: load and unload a model from its card and see the state change. Live sessions: a real
`/v1/stream` client appears and its frame count moves. Recordings: open one, see its plot, make
its MP4 and see it play. Keys: a read-only key cannot write, a wrong key is refused in the page.
Screenshots of each page go to build/screenshots/ui_*.png (docs/images/ with tools/update_ui_screenshots.sh).
"""

from __future__ import annotations

import base64
import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from oculus_server.recording.synthetic import write_synthetic
from tests.web_browser import (
    Service,
    make_driver,
    page_errors,
    run_service,
    screenshot,
    set_key,
    skip_without_browser,
    wait_for,
)

pytestmark = [pytest.mark.slow, skip_without_browser()]

CSS = "css selector"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("web")
    rec = root / "recordings"
    (rec / "success").mkdir(parents=True)
    (rec / "failure").mkdir()
    write_synthetic(rec / "success" / "2026-03-02_pick_red.mcap", seconds=4.0, cameras={"front": (320, 240)},
                    metadata={"task": "pick up the red cube", "operator": "alice"})
    write_synthetic(rec / "failure" / "2026-03-01_stack.mcap", seconds=2.0, cameras={"front": (320, 240)},
                    metadata={"task": "stack the blue cube on the green cube", "operator": "bob"},
                    drop_ticks=set(range(30, 40)))
    with run_service(root) as svc:
        yield svc


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    d = make_driver()
    try:
        yield d
    finally:
        d.quit()


def _state(driver: Any, model: str) -> str:
    return driver.find_element(CSS, f'.card[data-model="{model}"]').get_attribute("data-state")


def _no_page_errors(driver: Any, allowed: tuple[str, ...] = ()) -> None:
    errors = [e for e in page_errors(driver) if "favicon.ico" not in e and not any(a in e for a in allowed)]
    assert not errors, errors


def _make_cold(service: Service, model: str) -> None:
    """Unloads `model` through the API: other tests of this module (run in any order) may have warmed it."""
    import httpx

    headers = {"X-API-Key": service.admin_key}
    httpx.post(f"{service.url}/v1/models/{model}/unload", headers=headers, timeout=30)
    wait_for(lambda: httpx.get(f"{service.url}/v1/models/{model}", headers=headers, timeout=10).json()["state"]
             == "cold", 30, what=f"{model} cold before the test")


def test_models_page_load_and_unload(service: Service, driver: Any) -> None:
    _make_cold(service, "scripted-slow")
    set_key(driver, service.url, service.admin_key, "models")
    wait_for(lambda: driver.find_elements(CSS, ".card[data-model='scripted-slow']"), what="model cards")
    cards = {c.get_attribute("data-model") for c in driver.find_elements(CSS, ".card")}
    assert {"color-reach", "onnx-tiny", "scripted-slow"} <= cards
    assert _state(driver, "scripted-slow") == "cold"
    assert "ui-admin" in driver.find_element(CSS, "#key-status").text
    driver.find_element(CSS, '.card[data-model="scripted-slow"] button[data-action="load"]').click()
    wait_for(lambda: _state(driver, "scripted-slow") == "loading", 5, 0.02, what="loading state")
    wait_for(lambda: _state(driver, "scripted-slow") == "warm", 30, what="warm state")
    # A live refresh may replace the card between finding it and reading it: read it afresh each poll.
    def warm_card_figures() -> bool:
        text = driver.find_element(CSS, '.card[data-model="scripted-slow"]').text
        return "MiB" in text and "cold start" in text

    wait_for(warm_card_figures, 10, what="the warm card's memory and cold-start figures")
    wait_for(lambda: "MiB of" in driver.find_element(CSS, "#memory-figures").text, what="memory figures")
    driver.execute_script("window.scrollTo(0, 0)")
    screenshot(driver, "models")
    driver.find_element(CSS, '.card[data-model="scripted-slow"] button[data-action="unload"]').click()
    wait_for(lambda: _state(driver, "scripted-slow") == "cold", 20, what="cold again")
    _no_page_errors(driver)


def test_models_page_read_only_key_cannot_write(service: Service, driver: Any) -> None:
    set_key(driver, service.url, service.reader_key, "models")
    wait_for(lambda: driver.find_elements(CSS, ".card[data-model='scripted-slow']"), what="model cards")
    buttons = driver.find_elements(CSS, '.card[data-model="scripted-slow"] button')
    assert buttons and all(not b.is_enabled() for b in buttons)
    assert buttons[0].get_attribute("title") == "needs an admin key"
    assert "ui-reader · free" in driver.find_element(CSS, "#key-status").text


def test_a_wrong_key_is_refused_in_the_page(service: Service, driver: Any) -> None:
    set_key(driver, service.url, "vla_000000000000_wrong", "models")
    dialog = wait_for(lambda: driver.find_element(CSS, "#key-dialog[open]"), what="the key dialog")
    assert "key refused" in driver.find_element(CSS, "#key-status").text
    wait_for(
        lambda: (
            "not valid" in driver.find_element(CSS, ".banner.error").text
            or "invalid" in driver.find_element(CSS, ".banner.error").text
        ),
        what="an error banner",
    )
    dialog.find_element(CSS, "#key-input").send_keys("vla_111111111111_alsowrong")
    dialog.find_element(CSS, "#key-save").click()
    wait_for(lambda: driver.find_element(CSS, "#key-error").is_displayed(), what="the dialog's error")
    dialog.find_element(CSS, "#key-input").clear()
    dialog.find_element(CSS, "#key-input").send_keys(service.reader_key)
    dialog.find_element(CSS, "#key-save").click()
    wait_for(lambda: "ui-reader" in driver.find_element(CSS, "#key-status").text, what="the accepted key")
    assert driver.execute_script("return sessionStorage.getItem('vla.apiKey')") == service.reader_key


def _jpeg() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (90, 120, 160)).save(buf, format="JPEG")
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def _stream(url: str, key: str, stop: threading.Event, fps: float = 8.0) -> None:
    from websockets.sync.client import connect

    with connect(url.replace("http://", "ws://") + "/v1/stream", open_timeout=10) as ws:
        ws.send(json.dumps({"type": "auth", "api_key": key, "model": "scripted-slow", "robot_type": "franka_panda",
                            "target_fps": fps, "enable_smoothing": True, "enable_safety": True}))
        hello = json.loads(ws.recv(timeout=30))
        assert hello["type"] == "connected", hello
        frame = json.dumps({"type": "frame", "image": _jpeg(), "instruction": "hold still"})
        while not stop.wait(1.0 / fps):
            ws.send(frame)
            try:
                while True:
                    ws.recv(timeout=0)
            except TimeoutError:
                pass
        ws.send(json.dumps({"type": "close"}))


def test_live_sessions_page_updates(service: Service, driver: Any) -> None:
    set_key(driver, service.url, service.admin_key, "sessions")
    wait_for(lambda: "0 open" in driver.find_element(CSS, "#sessions-count").text, what="no sessions")
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            _stream(service.url, service.admin_key, stop)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        row = wait_for(
            lambda: driver.find_element(CSS, '#sessions-table tr[data-model="scripted-slow"]'),
            40,
            what="the session row",
        )
        assert "ui-admin" in row.text and "enterprise" in row.text
        first = int(wait_for(lambda: int(driver.find_element(CSS, "#sessions-table td.frames").text) > 0 and
                             driver.find_element(CSS, "#sessions-table td.frames").text, 20, what="frames counted"))
        wait_for(
            lambda: int(driver.find_element(CSS, "#sessions-table td.frames").text) >= first + 4,
            10,
            what="frames moving",
        )
        wait_for(lambda: float(driver.find_element(CSS, "#sessions-table td.fps").text.split("/")[0]) >= 6.0, 15,
                 what="the actual rate near the 8 fps target")
        screenshot(driver, "sessions")
    finally:
        stop.set()
        t.join(10)
    assert not errors, errors
    wait_for(lambda: "0 open" in driver.find_element(CSS, "#sessions-count").text, 10, what="the session gone")


def test_recordings_page_plot_and_video(service: Service, driver: Any) -> None:
    set_key(driver, service.url, service.reader_key, "recordings")
    rows = wait_for(lambda: driver.find_elements(CSS, "#recordings-table tr.clickable"), what="recordings")
    assert len(rows) == 2
    driver.find_element(CSS, '#recordings-table tr[data-id="success/2026-03-02_pick_red.mcap"]').click()
    wait_for(
        lambda: driver.find_element(CSS, "#recording-plot-img").get_property("naturalWidth") > 800, 30, what="the plot"
    )
    info = driver.find_element(CSS, "#recording-info").text
    assert "outcome   success" in info and "task: pick up the red cube" in info and "/control/mode" in info
    # the VR topics keep the newest sample per tick: explained as sampling, never as missing data
    assert "sampled by design (not data loss):" in info and "headset samples skipped, by design:" in info
    assert "sequence number(s) missing" not in info
    assert "#/recordings/success%2F2026-03-02_pick_red.mcap" in driver.current_url
    driver.find_element(CSS, "#make-video").click()
    wait_for(
        lambda: driver.execute_script(
            "const v = document.querySelector('#recording-video video');"
            " return v && v.readyState >= 2 && v.currentTime > 0.5"
        ),
        60,
        what="the video playing",
    )
    driver.execute_script("window.scrollTo(0, 0)")
    screenshot(driver, "recordings")
    driver.find_element(CSS, "input[type=search]").send_keys("stack")
    wait_for(lambda: len(driver.find_elements(CSS, "#recordings-table tr.clickable")) == 1, what="the filter")
    _no_page_errors(driver)


def test_static_ui_needs_no_key_but_data_does(service: Service, driver: Any, tmp_path: Path) -> None:
    import httpx

    assert httpx.get(f"{service.url}/ui/").status_code == 200
    for path in ("/v1/models", "/v1/sessions", "/v1/recordings"):
        assert httpx.get(f"{service.url}{path}").status_code == 401, path
