"""Every page of the web UI is usable on a phone: at 400 px wide, in headless Chromium against the
real service, no page scrolls sideways (the document is no wider than the window) and the
navigation stays reachable.

Seen case (issue 17, 8): at 400 px the header overflowed and Recordings / Battles / Sessions
scrolled sideways (scrollWidth 765–944).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from oculus_server.recording.synthetic import write_synthetic
from tests.web_browser import Service, make_driver, run_service, set_key, skip_without_browser, wait_for

pytestmark = [pytest.mark.slow, skip_without_browser()]

CSS = "css selector"
WIDTH = 400
PAGES = ("models", "sessions", "arena", "battles", "recordings")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("layout")
    rec = root / "recordings" / "success"
    rec.mkdir(parents=True)
    write_synthetic(rec / "2026-03-02_a_long_recording_name_without_spaces_pick_red.mcap", seconds=2.0,
                    cameras={"front": (320, 240)}, metadata={"task": "pick up the red cube", "operator": "alice"})
    with run_service(root) as svc:
        yield svc


@pytest.fixture(scope="module")
def phone() -> Iterator[Any]:
    d = make_driver(600, 860)  # headless Chromium's smallest window is 500 px: emulate the phone's width
    d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                      {"width": WIDTH, "height": 860, "deviceScaleFactor": 1, "mobile": False})
    try:
        yield d
    finally:
        d.quit()


def _overflow(driver: Any) -> tuple[int, int]:
    return driver.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.clientWidth];")


@pytest.mark.parametrize("page", PAGES)
def test_no_page_scrolls_sideways_at_400_px(service: Service, phone: Any, page: str) -> None:
    stop = threading.Event()
    streamer = None
    if page == "sessions":  # a live row makes the table as wide as it gets
        from tests.test_web_ui import _stream

        streamer = threading.Thread(target=_stream, args=(service.url, service.admin_key, stop), daemon=True)
        streamer.start()
    try:
        set_key(phone, service.url, service.admin_key, page)
        if page == "sessions":
            wait_for(lambda: phone.find_elements(CSS, "#sessions-table tr[data-model]"), 40, what="a session row")
        if page == "recordings":
            wait_for(lambda: phone.find_elements(CSS, ".rec-name"), 20, what="the recordings list")
        if page == "models":
            wait_for(lambda: phone.find_elements(CSS, ".card[data-model]"), 20, what="model cards")
        wait_for(lambda: "Loading" not in phone.find_element(CSS, "main").text, 20, what="the page loaded")
        scroll, client = _overflow(phone)
        assert client == WIDTH
        assert scroll <= client, f"#/{page} is {scroll} px wide in a {client} px window"
        for link in phone.find_elements(CSS, "#nav a"):  # every page reachable without sideways scrolling
            rect = phone.execute_script("const r = arguments[0].getBoundingClientRect(); return [r.left, r.right];",
                                        link)
            assert 0 <= rect[0] and rect[1] <= client, (link.text, rect, client)
    finally:
        stop.set()
        if streamer is not None:
            streamer.join(timeout=10)
