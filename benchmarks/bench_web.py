"""Web UI benchmark: API response times, page load times and live-update latency in headless Chromium.

    .venv/bin/python benchmarks/bench_web.py [--repeats 5] [--api-requests 50]

Starts the service (`create_app`: built-in catalog plus a scripted test model, arena on a 1-worker
process pool, one synthetic teleop recording, one finished arena episode) on a free 127.0.0.1 port.

Figures:
  * API: wall time of authenticated GETs from Python (httpx, keep-alive), p50 / p95.
  * Page cold load (a fresh document per page, key already in session storage): first contentful
    paint and "data shown" (the page's first render of server data), ms since navigation start.
  * Page switch inside the app (nav click): route change to data shown, ms.
  * Live update latency: a model loaded / unloaded through the API (fetch from the page, same clock)
    until its card says so; a /v1/stream session connecting (Python, wall clock) until its row
    appears on the Live sessions page. Both pages follow server-sent events (/v1/live/…, the
    server looks every 0.1 s; without them the pages poll every 1 s / 0.5 s).
Needs Debian's Chromium (tools/install_browser.sh).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.web_browser import browser_missing, make_driver, run_service, wait_for

PAGES = ("models", "sessions", "arena", "battles", "recordings")
API = ("/v1/models", "/v1/sessions", "/v1/recordings", "/v1/arena/episodes", "/v1/arena/leaderboard", "/v1/auth/whoami")


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


def row(name: str, values: list[float]) -> str:
    return (
        f"  {name:38} p50 {statistics.median(values):7.1f}   p95 {pct(values, 95):7.1f}   "
        f"max {max(values):7.1f}   (n={len(values)})"
    )


def bench_api(url: str, key: str, n: int) -> None:
    import httpx

    print("API GET, ms (httpx keep-alive, from Python)")
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as c:
        for path in API:
            c.get(path).raise_for_status()
            times = []
            for _ in range(n):
                t = time.perf_counter()
                c.get(path).raise_for_status()
                times.append((time.perf_counter() - t) * 1000)
            print(row(path, times))


def set_key(driver: Any, url: str, key: str) -> None:
    driver.get(f"{url}/ui/style.css")
    driver.execute_script("sessionStorage.setItem('vla.apiKey', arguments[0]);", key)


def bench_pages(driver: Any, url: str, repeats: int) -> None:
    fcp: dict[str, list[float]] = {p: [] for p in PAGES}
    ready: dict[str, list[float]] = {p: [] for p in PAGES}
    switch: dict[str, list[float]] = {p: [] for p in PAGES}
    for _ in range(repeats):
        for page in PAGES:
            driver.get("about:blank")
            driver.get(f"{url}/ui/#/{page}")
            wait_for(
                partial(
                    driver.execute_script,
                    "return (window.__vla && window.__vla.readyAt && window.__vla.readyAt[arguments[0]]) || 0",
                    page,
                ),
                30,
                0.01,
                what=f"{page} data",
            )
            f, r = driver.execute_script(
                "const e = performance.getEntriesByName('first-contentful-paint')[0];"
                " return [e ? e.startTime : null, window.__vla.readyAt[arguments[0]]]", page)
            if f is not None:
                fcp[page].append(f)
            ready[page].append(r)
        for page in (*PAGES[1:], PAGES[0]):  # in-app switches, each page reached from another
            driver.find_element("css selector", f'#nav a[data-page="{page}"]').click()
            v = wait_for(
                partial(driver.execute_script, "return window.__vla.ready[arguments[0]]", page),
                30,
                0.01,
                what=f"{page} switch",
            )
            switch[page].append(v)
    print("Page cold load, ms since navigation start (fresh document each time)")
    for page in PAGES:
        print(row(f"{page}: first contentful paint", fcp[page]))
        print(row(f"{page}: data shown", ready[page]))
    print("Page switch inside the app (nav click), ms to data shown")
    for page in PAGES:
        print(row(page, switch[page]))


def bench_model_update(driver: Any, url: str, model: str, repeats: int) -> None:
    driver.get(f"{url}/ui/#/models")
    wait_for(lambda: driver.find_elements("css selector", f'.card[data-model="{model}"]'), 30, what="cards")
    observe = """
      window.__states = [];
      new MutationObserver(() => {
        const c = document.querySelector('.card[data-model="' + arguments[0] + '"]');
        if (c) window.__states.push([performance.now(), c.dataset.state]);
      }).observe(document.getElementById('model-cards'), {subtree: true, childList: true, attributes: true});
    """
    driver.execute_script(observe, model)
    lat = []
    for action, state in [("load", "warm"), ("unload", "cold")] * repeats:
        driver.execute_script("window.__states = [];")
        t_api = driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            " fetch(arguments[0], {method: 'POST',"
            " headers: {Authorization: 'Bearer ' + sessionStorage.getItem('vla.apiKey')}})"
            "   .then((r) => { if (!r.ok) throw new Error(r.status); done(performance.now()); })"
            ".catch((e) => done(-1));",
            f"/v1/models/{model}/{action}",
        )
        assert t_api > 0, f"{action} failed"
        def shown(state: str = state, t_api: float = t_api) -> float | None:
            return next(
                (x[0] for x in driver.execute_script("return window.__states") if x[1] == state and x[0] >= t_api), None
            )

        t_dom = wait_for(shown, 10, 0.01, what=f"card {state}")
        lat.append(t_dom - t_api)
    print("Live update: model state change (API call returned -> card shows it), ms")
    print(row(f"models page, {model}", lat))


def bench_session_update(driver: Any, url: str, key: str, repeats: int) -> None:
    from websockets.sync.client import connect

    driver.get(f"{url}/ui/#/sessions")
    wait_for(lambda: "open" in driver.find_element("css selector", "#sessions-count").text, 30, what="sessions page")
    lat = []
    for _ in range(repeats):
        with connect(url.replace("http://", "ws://") + "/v1/stream", open_timeout=10) as ws:
            ws.send(json.dumps({"type": "auth", "api_key": key, "model": "scripted-slow", "robot_type": "franka_panda",
                                "target_fps": 5, "enable_smoothing": False, "enable_safety": False}))
            hello = json.loads(ws.recv(timeout=30))
            t_conn = time.time() * 1000
            assert hello["type"] == "connected", hello
            sid = hello["session_id"]
            t_dom = wait_for(
                partial(
                    driver.execute_script,
                    "return document.querySelector('#sessions-table tr[data-session=\"' + arguments[0] + '\"]')"
                    " ? performance.timeOrigin + performance.now() : 0",
                    sid,
                ),
                10,
                0.005,
                what="session row",
            )
            lat.append(t_dom - t_conn)
            ws.send(json.dumps({"type": "close"}))
        wait_for(
            lambda: "0 open" in driver.find_element("css selector", "#sessions-count").text, 10, 0.02, what="row gone"
        )
    print("Live update: stream session connected -> row on the Live sessions page, ms")
    print(row("sessions page", lat))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--api-requests", type=int, default=50)
    args = p.parse_args()
    why = browser_missing()
    if why:
        print(f"cannot run: {why}", file=sys.stderr)
        return 2
    os.environ.setdefault("MUJOCO_GL", "egl")
    from oculus_server.recording.synthetic import write_synthetic

    with tempfile.TemporaryDirectory(prefix="bench_web_") as tmp:
        root = Path(tmp)
        (root / "recordings" / "success").mkdir(parents=True)
        write_synthetic(root / "recordings" / "success" / "demo.mcap", seconds=10.0, cameras={"front": (320, 240)})
        with run_service(root) as svc:
            import httpx

            h = {"Authorization": f"Bearer {svc.admin_key}"}
            ep = httpx.post(
                f"{svc.url}/v1/arena/episodes",
                json={"model": "color-reach", "instruction": "pick up the red cube", "steps": 20},
                headers=h,
                timeout=30,
            ).json()
            deadline = time.monotonic() + 120
            while httpx.get(f"{svc.url}/v1/arena/episodes/{ep['id']}", headers=h).json()["status"] not in (
                "done",
                "failed",
            ):
                if time.monotonic() > deadline:
                    raise TimeoutError("the arena episode did not finish")
                time.sleep(0.2)
            print(f"service {svc.url}; {os.cpu_count()} CPUs; Chromium headless; repeats {args.repeats}\n")
            bench_api(svc.url, svc.reader_key, args.api_requests)
            driver = make_driver()
            try:
                set_key(driver, svc.url, svc.admin_key)
                bench_pages(driver, svc.url, args.repeats)
                bench_model_update(driver, svc.url, "scripted-slow", args.repeats)
                bench_session_update(driver, svc.url, svc.admin_key, args.repeats)
            finally:
                driver.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
