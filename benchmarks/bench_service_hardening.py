"""Benchmark: the service as attackers and tenants meet it (issue 17's "Done means" figures),
against ``vla-server serve`` started as a process on loopback. Prints figures; nothing passes or
fails.

1. **Memory before auth**: the service's peak RSS (VmHWM) before and after unauthenticated
   200 MiB request bodies to ``/v1/arena/episodes`` — one with a Content-Length, one streamed
   chunked — with the status and the time to the answer (target: < +100 MiB).
2. **Fairness**: an Enterprise session's round trip p50/p99 (320×240 frames at 30 Hz, a zero-time
   model) alone, then while a Free key sends the largest allowed frame (the pixel budget, noisy
   content: the costliest decode) at its full 10 Hz on the same model (target: p99 < 10× alone).
3. **Revocation to close**: from the moment ``vla-server keys revoke`` commits (the ``revoked_at``
   it writes) to the close frame on an open `/v1/stream` session and an open openpi session,
   over several trials (target: ≤ 1 s).

Run: ``.venv/bin/python benchmarks/bench_service_hardening.py [--quick]``. The openpi speed
ratios against openpi's own server are `benchmarks/bench_openpi.py --reference`.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from robot_formats.image import JPEG_PREFIX, encode_jpeg_data_url  # noqa: E402
from tests.test_api_guard import _post_raw  # noqa: E402 -- the raw-socket sender the test uses
from tests.vla_serve_process import (  # noqa: E402
    ServeProcess,
    droid_obs,
    openpi_connect,
    openpi_infer,
    serve_process,
    status_kib,
    write_catalog,
)
from tests.vla_service import auth_msg  # noqa: E402
from vla_server.auth.store import KeyStore  # noqa: E402
from vla_server.constants import MAX_FRAME_PIXELS  # noqa: E402

MIB = 1024 * 1024


def pcts(ms: list[float]) -> str:
    a = np.asarray(ms)
    return f"p50 {np.percentile(a, 50):7.2f} ms  p99 {np.percentile(a, 99):7.2f} ms  (n={len(a)})"


def bench_memory(svc: ServeProcess) -> None:
    print("1. memory before auth: unauthenticated 200 MiB bodies to POST /v1/arena/episodes")
    for chunked in (False, True):
        before = status_kib(svc.pid, "VmHWM")
        t0 = time.perf_counter()
        code, sent = _post_raw(svc.port, "/v1/arena/episodes", 200 * MIB, {}, chunked=chunked)
        dt = (time.perf_counter() - t0) * 1000
        after = status_kib(svc.pid, "VmHWM")
        print(f"   {'chunked' if chunked else 'Content-Length'}: HTTP {code} after {dt:6.1f} ms, "
              f"{sent / MIB:6.1f} MiB sent; service peak RSS {before / 1024:6.1f} -> {after / 1024:6.1f} MiB "
              f"(+{(after - before) / 1024:.1f} MiB)")


def _jpeg_url(w: int, h: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=95)
    return JPEG_PREFIX + base64.b64encode(buf.getvalue()).decode()


def _normal_tenant(svc: ServeProcess, key: str, seconds: float) -> list[float]:
    """Round trips of a 30 Hz session, ms (send of frame i → its action)."""
    frame = json.dumps({"type": "frame", "image": encode_jpeg_data_url(
        np.random.default_rng(1).integers(0, 255, (240, 320, 3), dtype=np.uint8)), "instruction": "pick"})
    out: list[float] = []
    with connect(svc.ws, open_timeout=10, max_size=None) as ws:
        ws.send(auth_msg(key, "shared", fps=50))  # the tier's maximum: the 30 Hz sender is never rate-dropped
        json.loads(ws.recv(timeout=30))
        end = time.monotonic() + seconds
        next_t = time.monotonic()
        while time.monotonic() < end:
            t0 = time.perf_counter()
            ws.send(frame)
            msg = {"type": ""}
            while msg["type"] not in ("action", "error"):
                try:
                    msg = json.loads(ws.recv(timeout=5))
                except TimeoutError:  # not answered (dropped): counted as a 5 s round trip
                    break
            out.append((time.perf_counter() - t0) * 1000)
            next_t = max(next_t + 1 / 30, time.monotonic())  # no catch-up burst after a slow answer
            time.sleep(max(0.0, next_t - time.monotonic()))
    return out[5:]


def bench_fairness(svc: ServeProcess, seconds: float) -> None:
    side_w, side_h = 1280, MAX_FRAME_PIXELS // 1280
    print(f"2. fairness on one zero-time model: Enterprise 320x240 at 30 Hz; Free {side_w}x{side_h} "
          f"(the pixel budget, noisy JPEG) at 10 Hz")
    ent = svc.new_key("bench-ent", "enterprise")
    free = svc.new_key("bench-free", "free")
    _normal_tenant(svc, ent, 1.0)  # warm
    alone = _normal_tenant(svc, ent, seconds)
    big = json.dumps({"type": "frame", "image": _jpeg_url(side_w, side_h, 2), "instruction": "hog"})
    stop = threading.Event()
    hog_ms: list[float] = []

    def hog() -> None:
        with connect(svc.ws, open_timeout=10, max_size=None) as ws:
            ws.send(auth_msg(free, "shared", fps=10))
            json.loads(ws.recv(timeout=30))
            next_t = time.monotonic()
            while not stop.is_set():
                t0 = time.perf_counter()
                ws.send(big)
                try:
                    msg = json.loads(ws.recv(timeout=2))
                except TimeoutError:  # dropped by the 10 Hz gate: send on
                    continue
                if msg["type"] == "action":
                    hog_ms.append((time.perf_counter() - t0) * 1000)
                next_t = max(next_t + 0.1, time.monotonic())
                time.sleep(max(0.0, next_t - time.monotonic()))

    t = threading.Thread(target=hog, daemon=True)
    t.start()
    time.sleep(1.0)
    loaded = _normal_tenant(svc, ent, seconds)
    stop.set()
    t.join(timeout=10)
    print(f"   Enterprise alone       {pcts(alone)}")
    print(f"   Enterprise beside Free {pcts(loaded)}")
    print(f"   Free's own frames      {pcts(hog_ms)}  ({len(big) / 1024:.0f} KiB messages)")
    print(f"   ratio with/alone: p50 {np.percentile(loaded, 50) / np.percentile(alone, 50):.2f}x, "
          f"p99 {np.percentile(loaded, 99) / np.percentile(alone, 99):.2f}x")


def bench_revocation(svc: ServeProcess, trials: int) -> None:
    print("3. revocation to close (from the revoked_at the CLI commits to the close frame)")
    store = KeyStore(svc.data_dir / "keys.sqlite3")
    assert svc.openpi_port is not None
    stream_s: list[float] = []
    openpi_s: list[float] = []
    for i in range(trials):
        name = f"bench-revoke-{i}"
        key = svc.new_key(name, "pro")
        closed: dict[str, float] = {}
        ws = connect(svc.ws, open_timeout=10)
        ws.send(auth_msg(key, "shared", fps=10))
        json.loads(ws.recv(timeout=30))
        pi, _ = openpi_connect(svc.openpi_port, key)
        openpi_infer(pi, droid_obs())

        def wait_close(name_: str, conn: object, into: dict[str, float] = closed) -> None:
            try:
                while True:
                    conn.recv(timeout=30)  # type: ignore[attr-defined]
            except (ConnectionClosed, TimeoutError):
                into[name_] = time.time()

        threads = [threading.Thread(target=wait_close, args=("stream", ws)),
                   threading.Thread(target=wait_close, args=("openpi", pi))]
        for t in threads:
            t.start()
        svc.cli("keys", "revoke", name)
        for t in threads:
            t.join(timeout=30)
        revoked_at = next(k.revoked_at for k in store.list_keys() if k.name == name)
        assert revoked_at is not None
        stream_s.append(closed["stream"] - revoked_at)
        openpi_s.append(closed["openpi"] - revoked_at)
        ws.close()
        pi.close()
    for label, v in (("/v1/stream", stream_s), ("openpi", openpi_s)):
        print(f"   {label:10s} median {np.median(v) * 1000:6.0f} ms, max {max(v) * 1000:6.0f} ms over {trials} trials")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="shorter runs")
    args = p.parse_args()
    seconds = 4.0 if args.quick else 10.0
    with tempfile.TemporaryDirectory() as tmp:
        catalog = write_catalog(Path(tmp) / "models.yaml",
                                "  - {id: shared, backend: scripted, params: {horizon: 2}}\n")
        with serve_process(Path(tmp), catalog, "--no-web", "--arena-executor", "inline") as svc:
            bench_memory(svc)
            bench_fairness(svc, seconds)
            bench_revocation(svc, 3 if args.quick else 8)


if __name__ == "__main__":
    main()
