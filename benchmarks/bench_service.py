"""Benchmark: the inference service (`vla-server`) — overhead per frame, round trips, capacity,
model life cycle and worker memory.

Run: ``MUJOCO_GL=egl .venv/bin/python benchmarks/bench_service.py [--quick]``. Prints figures;
nothing passes or fails. Sections:

1. **Overhead per frame without model time**, in process: a `StreamSession` on an in-memory
   transport with a zero-time model, from the raw text message to the encoded `action` text
   (parse + base64 + JPEG header, rate gate and queue, JPEG decode — in the worker in the real
   service, in a thread here —, EMA + safety, JSON encode), p50/p99 at 320×240 and 640×480;
   plus each stage on its own.
2. **Round trip over loopback** through the real service process (uvicorn, websockets, a
   scripted worker answering in ~0 ms): client send → `action` received, same resolutions.
3. **End-to-end with color-reach**: the simulator in this process renders the front camera,
   frames go to the service at 10 Hz, actions come back and drive the arm (the cube pick is
   judged from the simulator's state); round trip p50/p99 and the pick's outcome.
4. **Sessions at 10 Hz with no drops**: N clients (this process, asyncio) stream 320×240 frames
   at 10 Hz to a zero-time model for a few seconds; N grows until a frame is dropped or answered
   late. Clients and service share the machine's cores.
5. **Model life cycle and memory**: cold start (spawn → ready), first inference, eviction (stop →
   gone) and worker RSS for scripted, onnx-tiny and color-reach, through `ModelRegistry`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from frankateach.lifeline import stop_child
from robot_formats.image import decode_jpeg, encode_jpeg_data_url
from robot_formats.robot_state import RobotStateIn
from robot_formats.stream.messages import ActionMessage, encode_server_message
from robot_formats.stream.parse import parse_client_message
from vla_server.auth.store import KeyStore
from vla_server.models import ModelSpec
from vla_server.policies.base import Observation
from vla_server.registry.types import InferResult
from vla_server.stream.config import StreamConfig
from vla_server.stream.session import StreamSession
from vla_server.workers.memory import rss_mb

RESOLUTIONS = ((320, 240), (640, 480))


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def fmt(values: list[float]) -> str:
    return (
        f"p50 {pct(values, 50):7.3f}  p99 {pct(values, 99):7.3f}  "
        f"mean {statistics.fmean(values):7.3f} ms (n={len(values)})"
    )


def scene_frame(width: int, height: int) -> np.ndarray:
    """A rendered front-camera frame of the pick scene (falls back to noise without rendering)."""
    try:
        import mujoco

        from frankateach.sim.backend import SimBackend
        from frankateach.sim.model import build_model

        model = build_model(cameras=True, width=width, height=height)
        backend = SimBackend(model=model)
        with mujoco.Renderer(model, height=height, width=width) as r:
            r.update_scene(backend.data, camera="front")
            return r.render().copy()
    except Exception as exc:  # noqa: BLE001 -- benchmark still runs, and says so
        print(f"  (no rendering: {exc}; using a noise image)")
        return np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)


def frame_text(image: np.ndarray, **extra: Any) -> str:
    msg = {"type": "frame", "image": encode_jpeg_data_url(image), "instruction": "pick up the red cube",
           "robot_state": {"pose": [0.5, 0.0, 0.35, 3.14159, 0.0, 0.0], "velocity": [0.0] * 6}}
    msg.update(extra)
    return json.dumps(msg)


# ---- 1. in-process overhead ------------------------------------------------------------------------


class _MemoryTransport:
    def __init__(self) -> None:
        self.inbox: asyncio.Queue[str | None] = asyncio.Queue()
        self.action_at: float | None = None
        self.got = asyncio.Event()

    async def receive(self) -> str | None:
        return await self.inbox.get()

    async def send_text(self, text: str) -> None:
        if text.startswith('{"type":"action"'):
            self.action_at = time.perf_counter()
            self.got.set()

    async def close(self, code: int, reason: str) -> None:
        pass


class _ZeroModel:
    """An `InferenceService` with a zero-time model and no IPC; it decodes the JPEG in a thread,
    as the model's worker process would, so the figure includes the decode."""

    actions = np.array([[0.2, 0.0, 0.0, 0.0, 0.0, 0.1, 1.0]])

    def has_model(self, model_id: str) -> bool:
        return True

    def acquire_session(self, model_id: str) -> None:
        pass

    def release_session(self, model_id: str) -> None:
        pass

    async def infer(self, model_id: str, obs: Any, tenant: str | None = None) -> InferResult:
        await asyncio.to_thread(decode_jpeg, obs.jpeg)
        return InferResult(self.actions, 0.0, 0.0, 0.0, model_id, 0, "cpu")

    async def end_session(self, model_id: str, session: str) -> None:
        pass


class _Sessions:
    def try_register(self, session: Any) -> None:
        return None

    def unregister(self, session: Any) -> None:
        pass


async def _overhead(width: int, height: int, n: int, keystore: KeyStore, key: str) -> list[float]:
    transport = _MemoryTransport()
    fake_now = [0.0]
    session = StreamSession(transport, registry=_ZeroModel(), keystore=keystore, sessions=_Sessions(),
                            config=StreamConfig(max_message_bytes=8 * 1024 * 1024), clock=lambda: fake_now[0])
    runner = asyncio.ensure_future(session.run())
    await transport.inbox.put(json.dumps({"type": "auth", "api_key": key, "model": "zero", "robot_type": "franka_panda",
                                          "target_fps": 50, "enable_smoothing": True, "enable_safety": True}))
    await asyncio.sleep(0.05)
    text = frame_text(scene_frame(width, height))
    out = []
    for i in range(n):
        fake_now[0] = i / 50.0  # frames exactly at target_fps: none is dropped by the gate
        transport.got.clear()
        t0 = time.perf_counter()
        await session.handle(text, fake_now[0])
        await transport.got.wait()
        assert transport.action_at is not None
        out.append((transport.action_at - t0) * 1000.0)
    await transport.inbox.put(None)
    await runner
    return out


def bench_overhead(n: int) -> None:
    print("\n1. Service overhead per frame without model time (in process; message text -> action text)")
    with tempfile.TemporaryDirectory() as d:
        store = KeyStore(Path(d) / "k.db")
        key = store.create("bench", "enterprise")[1]
        for w, h in RESOLUTIONS:
            image = scene_frame(w, h)
            text = frame_text(image)
            total = asyncio.run(_overhead(w, h, n, store, key))
            parse = _time(lambda t=text: parse_client_message(t, _limits()), n)
            msg = parse_client_message(text, _limits())
            decode = _time(lambda m=msg: decode_jpeg(m.jpeg), n)  # type: ignore[misc,union-attr]
            act = ActionMessage(1, time.time(), (0.2, 0, 0, 0, 0, 0.1, 1.0), 1.0, 3.2, True)
            enc = _time(lambda a=act: encode_server_message(a), n)
            print(f"  {w}x{h} (message {len(text) / 1024:.0f} KiB):")
            print(f"    total              {fmt(total)}")
            print(f"    parse+b64+header   {fmt(parse)}")
            print(f"    JPEG decode        {fmt(decode)}")
            print(f"    action JSON encode {fmt(enc)}")


def _limits() -> Any:
    from robot_formats.stream.parse import ParseLimits

    return ParseLimits(max_message_bytes=8 * 1024 * 1024)


def _time(fn: Any, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000.0)
    return out


# ---- service process helpers ------------------------------------------------------------------


class ServiceProcess:
    """`vla-server serve` as a child process on free ports, with a key."""

    def __init__(self, catalog_yaml: str, extra: list[str] | None = None) -> None:
        self.dir = tempfile.TemporaryDirectory()
        d = Path(self.dir.name)
        (d / "models.yaml").write_text(catalog_yaml)
        self.key = KeyStore(d / "data" / "keys.sqlite3").create("bench", "enterprise")[1]
        cmd = [sys.executable, "-m", "vla_server.cli", "serve", "--port", "0", "--no-openpi", "--no-web", "--no-arena",
               "--data-dir", str(d / "data"), "--catalog", str(d / "models.yaml"), "--host", "127.0.0.1",
               *(extra or [])]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.port: int | None = None
        self._ready = threading.Event()
        threading.Thread(target=self._drain, daemon=True).start()
        if not self._ready.wait(60) or self.port is None:
            self.stop()
            raise RuntimeError("service did not start")

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            if '"listening"' in line:
                self.port = json.loads(line)["port"]
                self._ready.set()
        self._ready.set()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/stream"

    def models(self) -> dict[str, Any]:
        import httpx

        return httpx.get(f"http://127.0.0.1:{self.port}/v1/models", headers={"X-API-Key": self.key}, timeout=10).json()

    def cpu_s(self) -> float:
        """CPU seconds of the service and its workers so far."""
        pids = [self.proc.pid] + [m["pid"] for m in self.models()["models"] if m["pid"]]
        tick = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick
            except (FileNotFoundError, IndexError, ValueError):
                pass
        return total

    def stop(self) -> None:
        stop_child(self.proc, 15)
        self.dir.cleanup()


def _auth(key: str, model: str, fps: float) -> str:
    return json.dumps({"type": "auth", "api_key": key, "model": model, "robot_type": "franka_panda",
                       "target_fps": fps, "enable_smoothing": False, "enable_safety": True})


# ---- 2. round trip over loopback ------------------------------------------------------------------


def bench_roundtrip(n: int) -> None:
    from websockets.sync.client import connect

    print("\n2. Round trip over loopback through the service process (zero-time scripted model)")
    svc = ServiceProcess("models:\n  - {id: zero, backend: scripted}\n")
    try:
        for w, h in RESOLUTIONS:
            text = frame_text(scene_frame(w, h))
            rtt, server = [], []
            with connect(svc.url, max_size=None) as ws:
                ws.send(_auth(svc.key, "zero", 50))
                json.loads(ws.recv(timeout=30))
                for i in range(n + 5):
                    t0 = time.perf_counter()
                    ws.send(text)
                    msg = json.loads(ws.recv(timeout=30))
                    if i >= 5:  # the first frames load the worker
                        rtt.append((time.perf_counter() - t0) * 1000.0)
                        server.append(msg["latency_ms"])
                    time.sleep(max(0.0, 0.021 - (time.perf_counter() - t0)))  # stay under 50 Hz
            print(f"  {w}x{h}: client round trip {fmt(rtt)}")
            print(f"  {' ' * len(f'{w}x{h}')}  in the service     {fmt(server)}")
    finally:
        svc.stop()


# ---- 3. color-reach end to end ------------------------------------------------------------------------


def bench_color_reach(steps: int) -> None:
    import mujoco
    from websockets.sync.client import connect

    from frankateach.messages import FrankaAction
    from frankateach.sim.backend import SimBackend
    from frankateach.sim.model import build_model
    from robot_formats.action_space import action_to_target
    from robot_formats.robot_state import pos_quat_to_pose

    print("\n3. End-to-end with color-reach (sim frames at 10 Hz -> service -> actions drive the sim)")
    svc = ServiceProcess("models:\n  - {id: color-reach, backend: color-reach}\n")
    try:
        model = build_model(cameras=True, width=320, height=240)
        backend = SimBackend(model=model)
        start_z = float(backend.body_position("red_cube")[2])
        steps_per_call = max(1, round(0.1 / backend.dt))
        rtt, server = [], []
        with mujoco.Renderer(model, height=240, width=320) as renderer, connect(svc.url, max_size=None) as ws:
            ws.send(_auth(svc.key, "color-reach", 10))
            json.loads(ws.recv(timeout=60))
            t_next = time.monotonic()
            for k in range(steps):
                time.sleep(max(0.0, t_next - time.monotonic()))
                t_next = max(t_next, time.monotonic()) + 0.1  # never faster than 10 Hz: extra frames are dropped
                renderer.update_scene(backend.data, camera="front")
                st = backend.read_state()
                text = json.dumps({"type": "frame", "image": encode_jpeg_data_url(renderer.render()),
                                   "instruction": "pick up the red cube",
                                   "robot_state": {"pose": list(pos_quat_to_pose(st.pos, st.quat)),
                                                   "gripper": float(st.gripper)}})
                t0 = time.perf_counter()
                ws.send(text)
                msg = json.loads(ws.recv(timeout=120 if k == 0 else 10))
                if msg["type"] != "action":
                    raise RuntimeError(f"unexpected reply {msg}")
                if k > 0:  # frame 0 waits for the cold start
                    rtt.append((time.perf_counter() - t0) * 1000.0)
                    server.append(msg["latency_ms"])
                target = action_to_target(st.pos, st.quat, msg["action"])
                assert target is not None and target.gripper is not None
                backend.apply_action(FrankaAction(pos=np.array(target.pos), quat=np.array(target.quat),
                                                  gripper=target.gripper, reset=False,
                                                  timestamp=backend.sim_time))
                backend.step(steps_per_call)
        lift = float(backend.body_position("red_cube")[2]) - start_z
        model_ms = svc.models()["models"][0]["stats"]
        print(f"  client round trip {fmt(rtt)}")
        print(f"  in the service    {fmt(server)}")
        print(f"  model (worker)    p50 {model_ms['model_p50_ms']} p95 {model_ms['model_p95_ms']} ms; "
              f"cold start {model_ms['cold_start_ms']} ms")
        print(
            f"  red cube lifted {lift * 100:.1f} cm after {steps} steps: {'success' if lift >= 0.05 else 'no success'}"
        )
    finally:
        svc.stop()


# ---- 4. capacity ---------------------------------------------------------------------------------------


async def _client(url: str, key: str, text: str, duration_s: float, start_at: float, out: list[dict[str, Any]]) -> None:
    from websockets.asyncio.client import connect

    async with connect(url, max_size=None) as ws:
        await ws.send(_auth(key, "zero", 10))
        json.loads(await ws.recv())
        late = 0
        sent = 0
        received = 0
        latencies: list[float] = []
        loop = asyncio.get_running_loop()
        next_t = start_at

        async def reader() -> None:
            nonlocal received, late
            async for raw in ws:
                msg = json.loads(raw)
                if msg["type"] == "action":
                    received += 1
                    latencies.append(msg["latency_ms"])
                    if msg["latency_ms"] > 100.0:  # answered after the next frame was due
                        late += 1
                elif msg["type"] == "stats":
                    out.append({**msg, "sent": sent, "received": received, "late": late, "latencies": latencies})
                    return

        task = asyncio.ensure_future(reader())
        end = start_at + duration_s
        while next_t < end:
            await asyncio.sleep(max(0.0, next_t - loop.time()))
            await ws.send(text)
            sent += 1
            next_t += 0.1
        await asyncio.sleep(0.5)
        await ws.send('{"type":"stats"}')
        await asyncio.wait_for(task, 10)


async def _capacity_round(url: str, key: str, text: str, n: int, duration_s: float,
                          reasons: dict[str, int]) -> list[dict[str, Any]]:
    import httpx

    out: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    start = loop.time() + 1.0 + n * 0.01
    offsets = np.linspace(0, 0.1, n, endpoint=False)  # spread the sessions over the 100 ms period

    async def drop_reasons() -> None:  # per-reason drops while every session is still open
        await asyncio.sleep(max(0.0, start + duration_s + 0.3 - loop.time()))
        base = url.replace("ws://", "http://").replace("/v1/stream", "")
        async with httpx.AsyncClient() as http:
            rows = (await http.get(f"{base}/v1/sessions", headers={"X-API-Key": key}, timeout=10)).json()["sessions"]
        for k in ("dropped_rate", "dropped_queue", "dropped_stale"):
            reasons[k] = sum(r[k] for r in rows)

    await asyncio.gather(drop_reasons(), *(_client(url, key, text, duration_s, start + float(o), out) for o in offsets))
    return out


def bench_capacity(levels: list[int], duration_s: float) -> None:
    print(f"\n4. Concurrent 10 Hz sessions, 320x240 frames, zero-time model, {duration_s:g} s per level "
          "(clients in this process on the same 2 cores)")
    svc = ServiceProcess("models:\n  - {id: zero, backend: scripted}\n")
    best = 0
    try:
        text = frame_text(scene_frame(320, 240))
        asyncio.run(_capacity_round(svc.url, svc.key, text, 1, 1.0, {}))  # warm the worker
        for n in levels:
            cpu0, t0, own0 = svc.cpu_s(), time.monotonic(), sum(os.times()[:2])
            reasons: dict[str, int] = {}
            rows = asyncio.run(_capacity_round(svc.url, svc.key, text, n, duration_s, reasons))
            wall = time.monotonic() - t0
            cpu = (svc.cpu_s() - cpu0) / wall * 100
            own = (sum(os.times()[:2]) - own0) / wall * 100
            sent = sum(r["sent"] for r in rows)
            dropped = sum(r["dropped_frames"] for r in rows)
            missing = sent - sum(r["received"] for r in rows)
            late = sum(r["late"] for r in rows)
            lat = [x for r in rows for x in r["latencies"]]
            fps = sum(r["received"] for r in rows) / n / duration_s
            ok = dropped == 0 and missing == 0
            print(f"  {n:4d} sessions: sent {sent:6d}, dropped {dropped:4d}, unanswered {missing:4d}, "
                  f"answers/session/s {fps:5.2f}, latency p50 {pct(lat, 50):6.2f} p99 {pct(lat, 99):7.2f} ms "
                  f"(>100 ms: {late}), CPU service+worker {cpu:5.1f} % clients {own:5.1f} %  {'OK' if ok else 'DROPS'}")
            if dropped:
                print(f"       drops by reason: beyond target_fps {reasons.get('dropped_rate')}, queue full "
                      f"{reasons.get('dropped_queue')}, stale (newest won) {reasons.get('dropped_stale')}")
            if not ok:
                break
            best = n
        print(f"  -> held {best} sessions at 10 Hz with no drops")
    finally:
        svc.stop()


# ---- 5. life cycle and memory -------------------------------------------------------------------------


def bench_lifecycle(rounds: int) -> None:
    from vla_server.catalog import load_catalog
    from vla_server.registry import ModelRegistry, RegistryConfig

    print("\n5. Model life cycle (max_models=1: every load evicts the previous model)")
    builtin = load_catalog()
    catalog = {"scripted": ModelSpec(id="scripted", backend="scripted"),
               "onnx-tiny": builtin["onnx-tiny"], "color-reach": builtin["color-reach"]}
    image = scene_frame(320, 240)

    async def main() -> dict[str, dict[str, list[float]]]:
        figures: dict[str, dict[str, list[float]]] = {m: {"first": [], "rss": [], "steady": []} for m in catalog}
        reg = ModelRegistry(catalog, RegistryConfig(max_models=1, memory_budget_mb=8192))
        await reg.start()
        try:
            for _ in range(rounds):
                for mid in catalog:
                    obs = Observation(image=image, instruction="pick up the red cube", session="b",
                                      robot_state=RobotStateIn(pose=(0.5, 0.0, 0.35, 3.14159, 0.0, 0.0)))
                    r = await reg.infer(mid, obs)
                    figures[mid]["first"].append(r.roundtrip_ms)
                    steady = [(await reg.infer(mid, obs)).roundtrip_ms for _ in range(10)]
                    figures[mid]["steady"].append(statistics.median(steady))
                    figures[mid]["rss"].append(rss_mb(reg.worker_pid(mid) or 0) or float("nan"))
            for mid in catalog:
                s = reg.stats(mid)
                figures[mid]["cold"] = [s["cold_start_mean_ms"]]
                figures[mid]["evict"] = [s["eviction_ms"] or float("nan")]
                figures[mid]["evictions"] = [s["evictions"]]
        finally:
            await reg.aclose()
        return figures

    figs = asyncio.run(main())
    print("  cold start = spawn -> policy loaded and ready; 1st infer = first request after that; "
          "eviction = stop request -> process gone")
    print(f"  {'model':<12} {'cold start':>11} {'1st infer':>10} {'steady':>9} {'eviction':>9} {'worker RSS':>11}")
    for mid, f in figs.items():
        print(
            f"  {mid:<12} {f['cold'][0]:8.0f} ms {statistics.fmean(f['first']):7.1f} ms "
            f"{statistics.fmean(f['steady']):6.2f} ms "
            f"{f['evict'][0]:6.1f} ms {statistics.fmean(f['rss']):7.1f} MiB   ({int(f['evictions'][0])} evictions)"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer frames and levels (a smoke run)")
    parser.add_argument("--only", type=int, nargs="*", help="run only these sections (1-5)")
    args = parser.parse_args()
    n = 60 if args.quick else 300
    sections = set(args.only or [1, 2, 3, 4, 5])
    print(f"vla-server benchmark on {os.cpu_count()} cores (load average {os.getloadavg()[0]:.1f})")
    if 1 in sections:
        bench_overhead(n)
    if 2 in sections:
        bench_roundtrip(n // 2)
    if 3 in sections:
        bench_color_reach(30 if args.quick else 60)
    if 4 in sections:
        levels = [5, 20] if args.quick else [10, 20, 30, 40, 50, 60, 80, 100, 130, 160, 200]
        bench_capacity(levels, 3.0 if args.quick else 5.0)
    if 5 in sections:
        bench_lifecycle(1 if args.quick else 3)
    return 0


if __name__ == "__main__":
    sys.exit(main())
