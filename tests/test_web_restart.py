"""The web UI survives a restart of the service (headless Chromium, the real service on loopback):
a page opened while the service is down says so in plain words, and its lists and forms fill by
themselves once the service is back on the same address — no navigating away and back.

Seen case (issue 17, 8): after the service restarted, an open Arena page kept an empty model list
(Run said only "Please select an item in the list") until the user navigated away; errors read
"(Failed to fetch)".
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.web_browser import make_driver, run_service, set_key, skip_without_browser, wait_for

pytestmark = [pytest.mark.slow, skip_without_browser()]

CSS = "css selector"


@pytest.fixture()
def driver() -> Iterator[Any]:
    d = make_driver()
    try:
        yield d
    finally:
        d.quit()


def _model_options(driver: Any) -> int:
    return len(driver.find_elements(CSS, "#arena-model option[value]:not([value=''])"))


def test_lists_fill_again_when_the_service_comes_back(tmp_path: Path, driver: Any) -> None:
    with run_service(tmp_path) as first:
        url, keys = first.url, (first.admin_key, first.reader_key)
        port = int(url.rsplit(":", 1)[1])
        set_key(driver, url, first.admin_key, "arena")
        wait_for(lambda: _model_options(driver) > 0, 30, what="the arena's models")
        driver.get(f"{url}/ui/#/models")  # the arena page's module is loaded; now leave it
        wait_for(lambda: driver.find_elements(CSS, ".card[data-model]"), 30, what="model cards")
    # the service is down: open the arena page now
    driver.execute_script("location.hash = '#/arena'")
    wait_for(lambda: driver.execute_script("return document.body.dataset.page") == "arena", what="arena page")
    wait_for(lambda: not driver.find_element(CSS, "#service-status").get_attribute("hidden"), 20,
             what="the top bar saying the service is unreachable")
    assert _model_options(driver) == 0
    text = driver.find_element(CSS, "body").text
    assert "Failed to fetch" not in text and "cannot reach the service" in text, text[:500]
    with run_service(tmp_path, port=port, reuse_keys=keys):
        wait_for(lambda: _model_options(driver) > 0, 30, what="the model list filled again by itself")
        assert driver.find_element(CSS, "#service-status").get_attribute("hidden") is not None
        assert driver.execute_script("return location.hash") == "#/arena"  # never navigated away


def test_an_episode_interrupted_by_a_restart_shows_as_failed_with_its_log(tmp_path: Path, driver: Any) -> None:
    from selenium.webdriver.support.ui import Select

    with run_service(tmp_path) as first:
        url, keys = first.url, (first.admin_key, first.reader_key)
        port = int(url.rsplit(":", 1)[1])
        set_key(driver, url, first.admin_key, "arena")
        wait_for(lambda: driver.find_elements(CSS, "#arena-model option[value='color-reach']"), 30, what="models")
        Select(driver.find_element(CSS, "#arena-model")).select_by_value("color-reach")
        steps = driver.find_element(CSS, "#arena-steps")
        steps.clear()
        steps.send_keys("3000")
        driver.find_element(CSS, "#arena-run").click()
        wait_for(lambda: driver.find_element(CSS, "#arena-step").text.startswith("step") and
                 int(driver.find_element(CSS, "#arena-step").text.split()[1]) > 0, 90, what="the episode running")
        assert driver.find_elements(CSS, "#episode-cancel")
    # stopped mid-episode; the page stays open
    wait_for(lambda: not driver.find_element(CSS, "#service-status").get_attribute("hidden"), 30,
             what="the page noticing the service is gone")
    # When the service is back the page is mounted afresh (app.js, vla:service-back): its episode
    # panel is rebuilt, empty until its first poll. The panel there now is marked, so that what is
    # checked below is the new one (the old one may still show a poll that raced the remount).
    driver.execute_script("document.getElementById('arena-episode').dataset.before = 'restart'")
    new_panel = "#arena-episode:not([data-before])"
    with run_service(tmp_path, port=port, reuse_keys=keys):
        wait_for(lambda: driver.find_elements(CSS, f"{new_panel} .badge[data-state='failed']"), 40,
                 what="the badge following the episode to failed")
        assert not driver.find_elements(CSS, "#episode-cancel")  # no live Cancel button for a dead episode
        assert driver.find_element(CSS, f"{new_panel} #episode-rerun").is_enabled()
        wait_for(lambda: "interrupted" in driver.find_element(CSS, "#arena-log").text, 20, what="the log saying why")
        assert "interrupted" in driver.find_element(CSS, "#arena-episode").text
