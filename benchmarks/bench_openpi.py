"""Benchmark: the openpi wire path without model time — codec encode/decode of a DROID-shaped
observation, and the round trip through our openpi endpoint (uvicorn on loopback, a model that
answers a zero (10, 7) chunk at once), driven the way openpi's client drives it; plus the same
round trip through `OpenPIClient` (chunk scheduling included). Figures in ms (p50 / p99).

Run: ``.venv/bin/python benchmarks/bench_openpi.py [--requests N]``.

``--reference`` instead runs the side-by-side against openpi's own server with the unmodified
openpi-client (`benchmarks/openpi_reference.py`): ``[--openpi-server PATH/TO/openpi/src/openpi/
serving/websocket_policy_server.py] [--openpi-python VENV_PYTHON] [--rounds 5] [--seconds 5]``
prints round trip p50/p99, 4-client throughput, server CPU per 1,000 infers and RSS, and the
ratios; ``--no-handover`` runs our service with ``--no-openpi-handover`` (every request through
the service, a round trip to the model's worker each).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from websockets.sync.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from robot_formats.openpi_codec import packb, unpackb
from vla_client.openpi_client import OpenPIClient
from vla_server.openpi.server import create_openpi_app, serve_in_thread

SIZES = {"224x224 (DROID)": (224, 224), "320x240": (240, 320), "640x480": (480, 640)}


def observation(h: int, w: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    return {
        "observation/exterior_image_1_left": rng.integers(0, 255, (h, w, 3), dtype=np.uint8),
        "observation/wrist_image_left": rng.integers(0, 255, (h, w, 3), dtype=np.uint8),
        "observation/joint_position": rng.normal(size=7),
        "observation/gripper_position": np.array([0.0]),
        "prompt": "pick up the red cube",
    }


def pct(samples: list[float]) -> str:
    a = np.asarray(samples) * 1000.0
    return f"p50 {np.percentile(a, 50):7.3f} ms  p99 {np.percentile(a, 99):7.3f} ms"


def bench_codec(n: int) -> None:
    for name, (h, w) in SIZES.items():
        obs = observation(h, w)
        enc, dec = [], []
        for _ in range(n):
            t = time.perf_counter()
            wire = packb(obs)
            enc.append(time.perf_counter() - t)
            t = time.perf_counter()
            unpackb(wire)
            dec.append(time.perf_counter() - t)
        print(f"codec {name:16s} {len(wire) / 1024:7.0f} KiB  encode {pct(enc)}  decode {pct(dec)}")


async def _null_infer(model_id: str, obs: dict[str, Any]) -> dict[str, Any]:
    return {"actions": np.zeros((10, 7), np.float32)}


def bench_round_trip(n: int) -> None:
    app = create_openpi_app(_null_infer, {"bench": True}, None, model="null")
    with serve_in_thread(app) as port:
        for name, (h, w) in SIZES.items():
            obs = observation(h, w)
            times = []
            with connect(f"ws://127.0.0.1:{port}", compression=None, max_size=None) as ws:
                ws.recv(timeout=5)
                for _ in range(n):
                    t = time.perf_counter()
                    ws.send(packb(obs))
                    unpackb(ws.recv(timeout=5))
                    times.append(time.perf_counter() - t)
            print(f"endpoint round trip {name:16s} {pct(times)}  (openpi-client style, sync)")
        asyncio.run(_bench_client(port, n))


async def _bench_client(port: int, n: int) -> None:
    img = observation(224, 224)["observation/exterior_image_1_left"]
    async with OpenPIClient(f"ws://127.0.0.1:{port}") as c:
        await c.connect("null", target_fps=30)
        times = []
        for _ in range(n):
            t = time.perf_counter()
            before = c.client_stats().extra["chunks_received"]
            await c.send_frame(img, "pick up the red cube", {"pose": [0.5, 0, 0.3, 3.14, 0, 0]})
            while c.client_stats().extra["chunks_received"] == before:
                await asyncio.sleep(0.0002)  # poll without starving the server thread (same process)
            await c.receive_action(timeout=1, latest=True)
            times.append(time.perf_counter() - t)
        print(f"OpenPIClient frame -> scheduled action 224x224 {pct(times)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=200, help="requests per measurement")
    ap.add_argument("--reference", action="store_true", help="side by side with openpi's own server")
    ap.add_argument("--openpi-server", help="openpi's websocket_policy_server.py (from an openpi checkout)")
    ap.add_argument("--openpi-python", help="a Python (or venv) with openpi-client; default: a fresh venv")
    ap.add_argument("--rounds", type=int, default=5, help="alternated rounds (--reference)")
    ap.add_argument("--seconds", type=float, default=5.0, help="4-client throughput run length (--reference)")
    ap.add_argument("--no-handover", action="store_true",
                    help="serve ours with --no-openpi-handover: every request through the service (--reference)")
    args = ap.parse_args()
    if args.reference:
        from benchmarks.openpi_reference import run_reference

        run_reference(args)
        return
    bench_codec(args.requests)
    bench_round_trip(args.requests)


if __name__ == "__main__":
    main()
