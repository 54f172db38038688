"""Browser-test harness: Debian's Chromium driven by Selenium, and an ASGI app served on 127.0.0.1.

Selenium gets explicit paths (`/usr/bin/chromium`, `/usr/bin/chromedriver`) and ``SE_OFFLINE``,
so Selenium Manager never looks for, or downloads, a browser or driver. Without them the browser
tests skip with the command that installs them (`tools/install_browser.sh` does it when root).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("VLA_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("VLA_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")
INSTALL_HINT = "apt-get update && apt-get install -y chromium chromium-driver   (or: sudo tools/install_browser.sh)"
WINDOW = (1440, 960)  # a laptop screen; screenshots are taken at this size
SCREENSHOT_DIR = Path(__file__).resolve().parent.parent / "docs" / "images"


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            return f"{path} not found; the browser tests need Debian's Chromium: {INSTALL_HINT}"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    return None


def skip_without_browser() -> pytest.MarkDecorator:
    reason = browser_missing()
    return pytest.mark.skipif(reason is not None, reason=reason or "")


def make_driver(width: int = WINDOW[0], height: int = WINDOW[1]) -> Any:
    """A headless Chromium WebDriver (caller quits it)."""
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager: never reach the network
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--mute-audio",
                f"--window-size={width},{height}", "--autoplay-policy=no-user-gesture-required",
                "--disable-extensions", "--no-first-run", "--hide-scrollbars", "--force-device-scale-factor=1"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)


def free_socket(port: int = 0) -> socket.socket:
    """A listening-ready TCP socket bound to 127.0.0.1:`port` (0: a free port)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    return s


@contextmanager
def serve(app: Any, timeout_s: float = 20.0, port: int = 0) -> Iterator[str]:
    """Serves the ASGI `app` with uvicorn in a thread on `port` (0: a free one); yields its base URL."""
    import uvicorn

    sock = free_socket(port)
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", ws="auto", timeout_graceful_shutdown=3)
    server = uvicorn.Server(config)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # noqa: BLE001 - surfaced to the test below
            errors.append(exc)

    t = threading.Thread(target=run, name=f"uvicorn-{port}", daemon=True)
    t.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if errors or not t.is_alive():
            raise RuntimeError(f"the test server did not start: {errors[:1]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the test server did not start within {timeout_s} s")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        t.join(timeout_s)
        sock.close()
        if t.is_alive():
            raise RuntimeError("the test server did not stop")


def wait_for(
    pred: Callable[[], Any], timeout_s: float = 15.0, interval_s: float = 0.05, what: str = "condition"
) -> Any:
    """Polls `pred` until it returns a truthy value (returned); AssertionError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            v = pred()
            if v:
                return v
        except Exception as exc:  # noqa: BLE001 - element not there yet, stale element, …
            last_exc = exc
        time.sleep(interval_s)
    raise AssertionError(
        f"timed out after {timeout_s} s waiting for {what}" + (f" (last error: {last_exc})" if last_exc else "")
    )


def set_key(driver: Any, base_url: str, key: str, page: str = "models") -> None:
    """Opens the app with `key` in session storage (as the key dialog stores it) on `page`.

    Browser console messages from before are dropped (`page_errors` then reports this page's only).
    """
    page_errors(driver)
    driver.get(f"{base_url}/ui/style.css")  # same origin, no app running yet (no key dialog)
    driver.execute_script("sessionStorage.setItem('vla.apiKey', arguments[0]);", key)
    driver.get(f"{base_url}/ui/#/{page}")
    wait_for(lambda: driver.execute_script("return document.body.dataset.page") == page, what=f"page {page}")


def screenshot(driver: Any, name: str) -> Path:
    """Saves a PNG of the viewport as docs/images/ui_<name>.png (the README shows them)."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    out = SCREENSHOT_DIR / f"ui_{name}.png"
    tmp = out.with_suffix(".tmp.png")
    driver.save_screenshot(str(tmp))
    shutil.move(tmp, out)
    return out


def page_errors(driver: Any) -> list[str]:
    """Severe browser console messages since the last call (uncaught errors, failed module loads)."""
    try:
        logs = driver.get_log("browser")
    except Exception:  # noqa: BLE001 - a driver without log support: nothing to report
        return []
    return [e["message"] for e in logs if e.get("level") == "SEVERE"]


# -- the service under test -------------------------------------------------------------------------
@dataclass
class Service:
    """A running service: its base URL, an admin and a read-only key, its app and folders."""

    url: str
    admin_key: str
    reader_key: str
    app: Any
    data_dir: Path
    recordings_dir: Path


# A model that loads slowly (so "loading" is visible) and takes real memory, beside the built-in catalog.
SLOW_MODEL = {"id": "scripted-slow", "backend": "scripted", "description": "test model: 1.5 s load, 40 MB",
              "params": {"load_ms": 1500, "memory_mb": 40}}


@contextmanager
def run_service(
    root: Path, extra_models: tuple[dict[str, Any], ...] = (SLOW_MODEL,), port: int = 0,
    reuse_keys: tuple[str, str] | None = None, **overrides: Any
) -> Iterator[Service]:
    """Starts `create_app` (built-in catalog + `extra_models`, arena on a 1-process pool, web UI) on
    `port` (0: a free one), with its data and recordings folders under `root`."""
    from vla_server.app import create_app
    from vla_server.auth import KeyStore
    from vla_server.catalog import load_catalog
    from vla_server.config import load_config
    from vla_server.models import ModelSpec

    data, rec = root / "data", root / "recordings"
    rec.mkdir(parents=True, exist_ok=True)
    config = load_config(None, overrides={
        "server.data_dir": str(data), "server.recordings_dir": str(rec), "server.openpi_port": None,
        "server.log_format": "text", "server.log_level": "warning", "server.arena_workers": 1, **overrides})
    os.environ.setdefault("MUJOCO_GL", "egl")  # offscreen rendering in the arena's workers
    catalog = dict(load_catalog(None))
    for m in extra_models:
        spec = ModelSpec.from_dict(m)
        catalog[spec.id] = spec
    keys = KeyStore(config.keys_db)
    if reuse_keys is not None:  # a restart on the same folder: the keys the first start made
        admin, reader = reuse_keys
    else:
        _, admin = keys.create("ui-admin", "enterprise", admin=True)
        _, reader = keys.create("ui-reader", "free")
    app = create_app(config, catalog=catalog, keystore=keys, web=True)
    with serve(app, port=port) as url:
        yield Service(url, admin, reader, app, data, rec)
