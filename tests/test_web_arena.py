"""Arena and Battles pages end to end in headless Chromium: real episodes in the MuJoCo arena.

Start an episode from the form and see its progress move, its log stream in and then its video play
(`video.currentTime` advances) beside its metrics, with a thumbnail in the history grid; continue from
its final state blob; see an error shown in the page; start a battle, play both videos in sync, vote
and see the leaderboard change; watch an episode live (the run page links to its Foxglove view).
Screenshots go to build/screenshots/ui_arena*.png and ui_battles*.png (docs/images/ with
tools/update_ui_screenshots.sh); the live view's only to the test's temporary folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

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
SIM_TIMES: list[float] = []  # sim times of the blobs in debug_demo.mcap
VIDEO_PLAYING = (
    "const v = document.querySelector(arguments[0]); "
    "return v !== null && v.readyState >= 2 && v.currentTime > arguments[1]"
)


def write_debug_recording(path: Path, seconds: int = 4) -> list[float]:
    """A recording with the simulator's real state blob on /sim/state once a second (as `--debug`
    records it); returns the blobs' sim times."""
    from frankateach.sim import state_blob as SB
    from frankateach.sim.state_message import SimStateSample
    from robot_formats.recording.records import ControlMode, RecordTick
    from robot_formats.recording.writer import EpisodeWriter
    from vla_server.arena.scene import ArenaScene

    scene = ArenaScene()
    scene.reset("default", 0)
    w = EpisodeWriter(path, {"task": "pick up the red cube", "operator": "carol"})
    t0, hz, times = 1_760_000_000.0, 10, []
    for i in range(seconds * hz + 1):
        t = i / hz
        st = None
        if i % hz == 0:
            st = SimStateSample(sim_time=scene.time, physics_step=scene.step_count, wall_time=t0 + t,
                                scene_hash=scene.scene_hash.hex(), blob=SB.encode(scene.snapshot()))
            times.append(scene.time)
        w.write(RecordTick(seq=i, t_mono=t, t_wall=t0 + t, vr=None, robot=None, command=None,
                           mode=ControlMode.REAL_TIME, sim_state=st))
        scene.advance(500 // hz)
    w.close("success")
    return times


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("arena_web")
    (root / "recordings").mkdir()
    write_synthetic(root / "recordings" / "no_sim_state.mcap", seconds=1.0, cameras={})
    SIM_TIMES.extend(write_debug_recording(root / "recordings" / "debug_demo.mcap"))
    with run_service(root, **{"server.arena_live_port": 0}) as svc:  # live view: any free port
        yield svc


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    d = make_driver()
    try:
        yield d
    finally:
        d.quit()


def _select(driver: Any, css: str, value: str) -> None:
    from selenium.webdriver.support.ui import Select

    wait_for(lambda: driver.find_elements(CSS, f"{css} option[value='{value}']"), what=f"option {value} of {css}")
    Select(driver.find_element(CSS, css)).select_by_value(value)


def _type(driver: Any, css: str, text: str) -> None:
    el = driver.find_element(CSS, css)
    el.clear()
    el.send_keys(text)


def _errors(driver: Any) -> list[str]:
    return [e for e in page_errors(driver) if "favicon.ico" not in e]


def test_arena_episode_from_the_form(service: Service, driver: Any) -> None:
    set_key(driver, service.url, service.admin_key, "arena")
    _select(driver, "#arena-model", "color-reach")
    _type(driver, "#arena-steps", "30")
    assert "model default: 0 ms" == driver.find_element(CSS, "#arena-latency").get_attribute("placeholder")
    driver.find_element(CSS, "#arena-run").click()
    wait_for(lambda: "#/arena/" in driver.current_url, what="the episode's address")
    seen: set[int] = set()

    def step() -> int:
        text = driver.find_element(CSS, "#arena-step").text  # "step k of 30"
        k = int(text.split()[1]) if text.startswith("step") else -1
        seen.add(k)
        return k

    wait_for(lambda: 0 < step() < 30, 60, 0.05, what="an intermediate step (live progress)")
    wait_for(lambda: "step 10/30" in driver.find_element(CSS, "#arena-log").text, 60, what="log lines streamed in")
    first = wait_for(
        lambda: (
            driver.execute_script(VIDEO_PLAYING, "#arena-video", 0.2)
            and driver.execute_script("return document.querySelector('#arena-video').currentTime")
        ),
        90,
        what="the video playing",
    )
    wait_for(
        lambda: driver.execute_script("return document.querySelector('#arena-video').currentTime") > first + 0.5,
        10,
        what="video.currentTime advancing",
    )
    assert len({k for k in seen if 0 < k < 30}) >= 1
    metrics = driver.find_element(CSS, "#arena-metrics").text
    assert "lift:red_cube" in metrics and "success yes" in metrics and "30 at 10 Hz" in metrics
    tile = wait_for(
        lambda: driver.find_element(CSS, "#arena-history .tile[data-status='done']"), 20, what="a history tile"
    )
    wait_for(lambda: tile.find_element(CSS, "img").get_property("naturalWidth") > 0, 20, what="the thumbnail")
    driver.execute_script("window.scrollTo(0, 0)")
    screenshot(driver, "arena")
    driver.execute_script("document.querySelector('#arena-history').scrollIntoView()")
    screenshot(driver, "arena_history")
    _select(driver, "#history-status", "failed")
    wait_for(lambda: "No episode matches" in driver.find_element(CSS, "#arena-history").text or
             not driver.find_elements(CSS, "#arena-history .tile[data-status='done']"), what="the status filter")
    _select(driver, "#history-status", "")
    assert not _errors(driver)


def _finished_episode(service: Service, steps: int = 3) -> str:
    """Runs an episode through the API and waits until it is done (the history then holds one
    whatever order the module's tests run in); returns its id."""
    import httpx

    headers = {"X-API-Key": service.admin_key}
    r = httpx.post(f"{service.url}/v1/arena/episodes", headers=headers, timeout=30,
                   json={"model": "color-reach", "instruction": "pick up the red cube", "steps": steps})
    assert r.status_code == 201, r.text
    eid = r.json()["id"]

    def done() -> bool:
        status = httpx.get(f"{service.url}/v1/arena/episodes/{eid}", headers=headers, timeout=10).json()["status"]
        assert status in ("queued", "running", "done"), status
        return status == "done"

    wait_for(done, 120, what=f"episode {eid} done")
    return eid


def test_arena_continue_from_the_final_state(service: Service, driver: Any) -> None:
    _finished_episode(service)
    set_key(driver, service.url, service.admin_key, "arena")
    wait_for(
        lambda: driver.find_element(CSS, "#arena-history .tile[data-status='done']"), 20, what="a finished episode"
    ).click()
    button = wait_for(
        lambda: next(b for b in driver.find_elements(CSS, "#arena-result button") if b.text == "Continue from here"),
        30,
        what="the continue button",
    )
    button.click()
    wait_for(
        lambda: len(driver.find_element(CSS, "#arena-blob").get_property("value")) > 100,
        10,
        what="the blob in the form",
    )
    assert driver.find_element(CSS, "#arena-blob").is_displayed()
    _type(driver, "#arena-steps", "5")
    driver.find_element(CSS, "#arena-run").click()
    wait_for(
        lambda: "from blob at sim t=" in driver.find_element(CSS, "#arena-log").text,
        60,
        what="an episode started from the blob",
    )
    wait_for(lambda: driver.execute_script(VIDEO_PLAYING, "#arena-video", 0.1), 90, what="its video playing")


def test_arena_errors_show_in_the_page(service: Service, driver: Any) -> None:
    set_key(driver, service.url, service.admin_key, "arena")
    driver.find_element(CSS, "input[name=start][value=recording]").click()
    _select(driver, "#arena-recording", "no_sim_state.mcap")
    driver.find_element(CSS, "#arena-run").click()
    toast = wait_for(lambda: driver.find_element(CSS, ".toast.error"), 20, what="an error in the page")
    assert "simulator state" in toast.text or "sim/state" in toast.text


def test_arena_needs_an_admin_key_to_run(service: Service, driver: Any) -> None:
    _finished_episode(service)  # the history must hold an episode whatever order the module's tests run in
    set_key(driver, service.url, service.reader_key, "arena")
    wait_for(lambda: driver.find_elements(CSS, "#arena-history .tile"), 20, what="history readable with a reader key")
    assert not driver.find_element(CSS, "#arena-run").is_enabled()
    assert "admin key" in driver.find_element(CSS, "#arena-admin-note").text


def test_battle_vote_changes_the_leaderboard(service: Service, driver: Any) -> None:
    set_key(driver, service.url, service.admin_key, "battles")
    _select(driver, "#battle-model-a", "color-reach")
    _select(driver, "#battle-model-b", "color-reach@openvla-7b")
    _select(driver, "#battle-outcome-by", "vote")
    _type(driver, "#battle-steps", "30")
    before = driver.find_element(CSS, "#leaderboard-table").text
    driver.find_element(CSS, "#battle-run").click()
    wait_for(lambda: "#/battles/" in driver.current_url, what="the battle's address")

    assert (
        "color-reach@openvla-7b" not in driver.find_element(CSS, "#battle-side-b h3").text
    )  # names hidden until the vote
    wait_for(
        lambda: driver.execute_script("return document.querySelector('#battle-video-b').readyState >= 2"),
        180,
        what="both videos",
    )
    driver.find_element(CSS, "#sync-play").click()
    wait_for(
        lambda: (
            driver.execute_script(VIDEO_PLAYING, "#battle-video-a", 0.5)
            and driver.execute_script(VIDEO_PLAYING, "#battle-video-b", 0.5)
        ),
        20,
        what="both videos playing",
    )
    ta, tb = driver.execute_script(
        "return [document.querySelector('#battle-video-a').currentTime, "
        "document.querySelector('#battle-video-b').currentTime]"
    )
    assert abs(ta - tb) < 0.25, (ta, tb)  # in sync
    # a blind vote: both episodes are done, yet nothing tells the sides apart before the vote
    wait_for(lambda: "No outcome yet" in driver.find_element(CSS, "#battle-outcome-text").text, 15,
             what="the vote prompt")
    for side in ("#battle-side-a", "#battle-side-b"):
        text = driver.find_element(CSS, side).text
        assert "results hidden until you vote" in text
        assert not any(w in text for w in ("task success", "task failed", "progress", "color-reach")), text
    blind = driver.find_element(CSS, "#battle-outcome").text
    assert "metric" not in blind and "votes A" not in blind, blind
    assert "_" not in driver.find_element(CSS, "#battle-status").text  # plain words, not "awaiting_vote"
    driver.find_element(CSS, "button[data-vote='a']").click()
    wait_for(lambda: "A wins" in driver.find_element(CSS, "#battle-outcome-text").text, 15, what="the outcome")
    assert "color-reach@openvla-7b" in driver.find_element(CSS, "#battle-side-b h3").text  # revealed
    wait_for(lambda: "progress" in driver.find_element(CSS, "#battle-side-a").text, 15, what="results revealed")
    assert "votes A 1" in driver.find_element(CSS, "#battle-outcome").text
    wait_for(
        lambda: driver.find_element(CSS, "#leaderboard-table tr[data-model='color-reach'] td.wlt").text == "1 / 0 / 0",
        15,
        what="the leaderboard counting the vote",
    )
    after = driver.find_element(CSS, "#leaderboard-table").text
    assert after != before
    ra = float(driver.find_element(CSS, "#leaderboard-table tr[data-model='color-reach'] td.rating").text)
    rb = float(driver.find_element(CSS, "#leaderboard-table tr[data-model='color-reach@openvla-7b'] td.rating").text)
    assert ra > rb
    assert len(driver.find_elements(CSS, "#leaderboard-plot circle")) == 2
    driver.execute_script("window.scrollTo(0, 0)")
    screenshot(driver, "battles")
    driver.execute_script("document.querySelector('#leaderboard').scrollIntoView()")
    screenshot(driver, "leaderboard")
    assert not _errors(driver)


def test_hand_a_teleop_recording_to_a_policy(service: Service, driver: Any) -> None:
    set_key(driver, service.url, service.admin_key, "recordings")
    wait_for(
        lambda: driver.find_element(CSS, '#recordings-table tr[data-id="debug_demo.mcap"]'), what="the debug recording"
    ).click()
    wait_for(
        lambda: "simulator state recorded" in driver.find_element(CSS, "#recording-detail").text,
        what="the recording's details",
    )
    driver.find_element(CSS, "#hand-to-policy").click()
    wait_for(lambda: driver.execute_script("return document.body.dataset.page") == "arena", what="the arena page")
    wait_for(
        lambda: driver.find_element(CSS, "#arena-recording").get_property("value") == "debug_demo.mcap",
        what="the form preset",
    )
    assert driver.find_element(CSS, "input[name=start][value=recording]").is_selected()
    _type(driver, "#arena-at", "2.5")  # the newest blob at or before 2.5 s: the one recorded at 2 s
    _type(driver, "#arena-steps", "5")
    driver.find_element(CSS, "#arena-run").click()
    wait_for(lambda: f"from blob at sim t={SIM_TIMES[2]:.3f} s" in driver.find_element(CSS, "#arena-log").text, 60,
             what="an episode started at the recording's state")
    wait_for(lambda: driver.execute_script(VIDEO_PLAYING, "#arena-video", 0.1), 90, what="its video playing")


def test_cancel_a_running_episode(service: Service, driver: Any) -> None:
    set_key(driver, service.url, service.admin_key, "arena")
    _select(driver, "#arena-model", "color-reach")
    _type(driver, "#arena-steps", "3000")
    driver.find_element(CSS, "#arena-run").click()
    wait_for(lambda: driver.find_element(CSS, "#arena-step").text.startswith("step") and
             int(driver.find_element(CSS, "#arena-step").text.split()[1]) > 0, 60, what="the episode running")
    driver.find_element(CSS, "#episode-cancel").click()
    wait_for(
        lambda: driver.find_element(CSS, "#arena-episode .badge[data-state='cancelled']"),
        20,
        what="the episode cancelled",
    )
    assert driver.find_element(CSS, "#episode-rerun").is_enabled()
    assert "cancel" in driver.find_element(CSS, "#arena-log").text.lower()


def test_run_page_links_to_the_live_view_while_the_episode_runs(service: Service, driver: Any, tmp_path: Path) -> None:
    """"Watch it live in Foxglove": while the episode runs the page shows the Foxglove links and the
    ws:// address, which really serves the episode; once it ends the page says the view closed."""
    import urllib.parse

    from tests.foxglove_ws_client import FoxgloveClient

    set_key(driver, service.url, service.admin_key, "arena")
    _select(driver, "#arena-model", "color-reach")
    _type(driver, "#arena-steps", "60")  # 6 s of sim time at 10 Hz, paced to the wall clock
    driver.find_element(CSS, "#arena-live").click()
    driver.find_element(CSS, "#arena-run").click()
    link = wait_for(lambda: driver.find_element(CSS, "#arena-live-link"), 90, what="the live view's link")
    url = driver.find_element(CSS, "#arena-live-url").text
    host, port = urllib.parse.urlsplit(url).hostname, urllib.parse.urlsplit(url).port
    assert url.startswith("ws://") and host == "127.0.0.1" and port
    href = link.get_attribute("href")
    assert href == "https://app.foxglove.dev/~/view?ds=foxglove-websocket&ds.url=" + urllib.parse.quote(url, safe="")
    assert driver.find_element(CSS, "#arena-live-desktop").get_attribute("href").startswith("foxglove://open?")
    text = driver.find_element(CSS, "#arena-live-on").text
    assert "Watch it live: open it in Foxglove" in text and f"Open connection → Foxglove WebSocket → {url}" in text
    client = FoxgloveClient(url)  # what the link opens is there while the page shows it
    try:
        assert "/robot/joint_states" in client.wait_channels({"/robot/joint_states"})
    finally:
        client.close()
    assert driver.find_element(CSS, "#arena-episode .badge[data-state='running']")
    driver.save_screenshot(str(tmp_path / "ui_arena_live.png"))
    closed = "The live view closed when the episode ended."
    wait_for(lambda: closed in driver.find_element(CSS, "#arena-live-view").text, 90,
             what="the page saying the live view closed")
    assert not driver.find_elements(CSS, "#arena-live-link")
    assert not _errors(driver)
