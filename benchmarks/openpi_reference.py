"""Side-by-side run for `bench_openpi.py --reference`: our openpi endpoint (``vla-server serve``,
auth, tier, validation, the connection handed to the model's worker process — or, with
``--no-handover``, every request through the service) against openpi's own server, both answering a
zero-time policy, driven by the unmodified ``openpi-client`` (PyPI) in its own virtual
environment.

The reference server is, in order of preference:

1. openpi's own ``websocket_policy_server.py`` from a checkout (``--openpi-server PATH``: the
   file is imported from where it lies, never copied; it needs only ``openpi_client`` and
   ``websockets``, which the client venv has), serving a zero policy;
2. otherwise a minimal server built only from ``openpi_client.msgpack_numpy`` and
   ``websockets.asyncio.server`` (`REFERENCE_SERVER` below: metadata on connect, then
   unpack → zero actions → pack → send, per connection), which is what openpi's server does
   per request without its error handling.

Figures (medians over alternated rounds, reference first in odd rounds, ours first in even
ones): round trip p50/p99 (one client), 4-client throughput (infer/s), server CPU per 1,000
infers (process tree: the service and its worker), RSS (tree) at start and after, PSS (tree)
after (shared library pages counted once, where RSS counts them in each process) and peak RSS
(VmHWM summed over the tree: memory held during the run and handed back since still counts).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.vla_serve_process import serve_process, write_catalog  # noqa: E402

OPENPI_CLIENT = "openpi-client==0.1.2"
CLK_TCK = os.sysconf("SC_CLK_TCK")

REFERENCE_SERVER = '''
import asyncio, sys
import numpy as np
import websockets.asyncio.server as server
from openpi_client import msgpack_numpy

async def handler(ws):
    packer = msgpack_numpy.Packer()
    await ws.send(packer.pack({}))
    async for msg in ws:
        obs = msgpack_numpy.unpackb(msg)
        await ws.send(packer.pack({"actions": np.zeros((10, 7), np.float32)}))

async def main(port):
    async with server.serve(handler, "127.0.0.1", port, compression=None, max_size=None):
        print("ready", flush=True)
        await asyncio.Future()

asyncio.run(main(int(sys.argv[1])))
'''

OPENPI_FILE_SERVER = '''
import importlib.util, sys
import numpy as np
from openpi_client import base_policy

spec = importlib.util.spec_from_file_location("websocket_policy_server", sys.argv[2])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)

class ZeroPolicy(base_policy.BasePolicy):
    def infer(self, obs):
        return {"actions": np.zeros((10, 7), np.float32)}

print("ready", flush=True)
mod.WebsocketPolicyServer(ZeroPolicy(), host="127.0.0.1", port=int(sys.argv[1]), metadata={}).serve_forever()
'''

DRIVER = '''
import json, sys, threading, time
import numpy as np
from openpi_client.websocket_client_policy import WebsocketClientPolicy

port, key, mode, amount = int(sys.argv[1]), sys.argv[2] or None, sys.argv[3], float(sys.argv[4])
rng = np.random.default_rng(0)
obs = {
    "observation/exterior_image_1_left": rng.integers(0, 255, (224, 224, 3), dtype=np.uint8),
    "observation/wrist_image_left": rng.integers(0, 255, (224, 224, 3), dtype=np.uint8),
    "observation/joint_position": rng.normal(size=7) * 0.3,
    "observation/gripper_position": np.array([0.0]),
    "prompt": "pick up the red cube",
}
def client():
    return WebsocketClientPolicy("127.0.0.1", port, api_key=key) if key else WebsocketClientPolicy("127.0.0.1", port)
if mode == "latency":
    c = client()
    for _ in range(30):
        c.infer(obs)
    times = []
    for _ in range(int(amount)):
        t = time.perf_counter(); c.infer(obs); times.append(time.perf_counter() - t)
    a = np.asarray(times) * 1000
    print(json.dumps({"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99))}))
else:
    clients = [client() for _ in range(4)]
    for c in clients:
        c.infer(obs)
    counts = [0] * 4
    go, stop = threading.Event(), threading.Event()
    def run(i):
        go.wait()
        while not stop.is_set():
            clients[i].infer(obs); counts[i] += 1
    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads: t.start()
    print("go", flush=True)
    sys.stdin.readline()
    t0 = time.perf_counter(); go.set(); time.sleep(amount); stop.set()
    for t in threads: t.join()
    print(json.dumps({"count": sum(counts), "seconds": time.perf_counter() - t0}))
'''


def openpi_python(given: str | None, workdir: Path) -> Path:
    """A Python with the unmodified openpi-client (given, ``OPENPI_CLIENT_VENV``, or a fresh venv)."""
    for candidate in (given, os.environ.get("OPENPI_CLIENT_VENV")):
        if candidate:
            p = Path(candidate)
            return p if p.is_file() else p / "bin" / "python"
    venv = workdir / "openpi-client-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", OPENPI_CLIENT,
                    "typing_extensions"], check=True, timeout=600)
    return py


def tree_pids(pid: int) -> list[int]:
    """`pid` and its descendants."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def tree_cpu_s(pid: int) -> float:
    total = 0
    for p in tree_pids(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / CLK_TCK


def _tree_kib_field(pid: int, proc_file: str, field_name: str) -> float:
    """The sum of one ``Name: N kB`` line of ``/proc/<p>/<proc_file>`` over `pid` and its descendants, MiB."""
    total = 0
    for p in tree_pids(pid):
        try:
            for line in Path(f"/proc/{p}/{proc_file}").read_text().splitlines():
                if line.startswith(field_name + ":"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def tree_rss_mib(pid: int) -> float:
    return _tree_kib_field(pid, "status", "VmRSS")


def tree_hwm_mib(pid: int) -> float:
    """Peak resident set size (VmHWM, each process's own peak) summed over `pid` and its
    descendants, MiB: memory a process held during the run and handed back since counts here."""
    return _tree_kib_field(pid, "status", "VmHWM")


def tree_pss_mib(pid: int) -> float:
    """Proportional set size of `pid` and its descendants, MiB: a page shared by n processes counts
    1/n in each, so the shared libraries both our processes map (libpython, NumPy, OpenBLAS) count
    once in the sum instead of twice as in `tree_rss_mib`."""
    return _tree_kib_field(pid, "smaps_rollup", "Pss")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def measure(py: Path, driver: Path, port: int, key: str, server_pid: int, requests: int,
            seconds: float) -> dict[str, float]:
    rss_start = tree_rss_mib(server_pid)
    lat = json.loads(subprocess.run([str(py), str(driver), str(port), key, "latency", str(requests)],
                                    capture_output=True, text=True, check=True, timeout=300).stdout.strip())
    proc = subprocess.Popen([str(py), str(driver), str(port), key, "throughput", str(seconds)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdin is not None
    assert proc.stdout.readline().strip() == "go"
    cpu0 = tree_cpu_s(server_pid)
    proc.stdin.write("\n")
    proc.stdin.flush()
    thr = json.loads(proc.stdout.readline())
    cpu1 = tree_cpu_s(server_pid)
    proc.wait(timeout=60)
    return {"p50": lat["p50"], "p99": lat["p99"], "throughput": thr["count"] / thr["seconds"],
            "cpu_per_1000": (cpu1 - cpu0) / thr["count"] * 1000, "rss_start": rss_start,
            "rss_end": tree_rss_mib(server_pid), "pss_end": tree_pss_mib(server_pid),
            "hwm_end": tree_hwm_mib(server_pid)}


def run_reference(args: Any) -> None:
    """The side-by-side run; prints each round and the ratios of the medians."""
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        py = openpi_python(args.openpi_python, tmp)
        driver = tmp / "driver.py"
        driver.write_text(DRIVER)
        ref_file = tmp / "reference_server.py"
        ref_file.write_text(OPENPI_FILE_SERVER if args.openpi_server else REFERENCE_SERVER)
        ref_label = (f"openpi's {Path(args.openpi_server).name}" if args.openpi_server
                     else "minimal openpi-client server")
        ref_port = free_port()
        ref_cmd = [str(py), str(ref_file), str(ref_port)] + ([args.openpi_server] if args.openpi_server else [])
        ref = subprocess.Popen(ref_cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        catalog = write_catalog(tmp / "models.yaml", "  - {id: zero, backend: scripted, params: {horizon: 10}}\n")
        try:
            assert ref.stdout is not None and ref.stdout.readline().strip() == "ready"
            time.sleep(0.5)
            extra = ("--no-openpi-handover",) if getattr(args, "no_handover", False) else ()
            with serve_process(tmp, catalog, "--no-web", "--no-arena", "--openpi-model", "zero", *extra,
                               log_level="info") as svc:
                key = svc.new_key("bench", "enterprise")
                assert svc.openpi_port is not None
                results: dict[str, list[dict[str, float]]] = {"ref": [], "ours": []}
                for r in range(args.rounds):
                    order = [("ref", ref_port, "", ref.pid), ("ours", svc.openpi_port, key, svc.pid)]
                    for name, port, k, pid in (order if r % 2 == 0 else order[::-1]):
                        m = measure(py, driver, port, k, pid, args.requests, args.seconds)
                        results[name].append(m)
                        print(f"round {r + 1} {name:4s}: p50 {m['p50']:6.3f} ms  p99 {m['p99']:6.3f} ms  "
                              f"4 clients {m['throughput']:7.0f} infer/s  CPU {m['cpu_per_1000']:5.3f} s/1000  "
                              f"RSS {m['rss_start']:5.0f} -> {m['rss_end']:5.0f} MiB  PSS {m['pss_end']:4.0f} MiB  "
                              f"peak {m['hwm_end']:4.0f} MiB",
                              flush=True)
        finally:
            ref.terminate()
            ref.wait(timeout=10)
    med = {n: {k: float(np.median([m[k] for m in v])) for k in v[0]} for n, v in results.items()}
    o, f = med["ours"], med["ref"]
    mode = "requests through the service" if getattr(args, "no_handover", False) else "connections handed to the worker"
    print(f"reference: {ref_label}; ours: {mode}; medians of {args.rounds} alternated rounds")
    print(f"round trip p50  {o['p50']:.3f} vs {f['p50']:.3f} ms  ratio {o['p50'] / f['p50']:.2f}x  (goal <= 1.3x)")
    print(f"round trip p99  {o['p99']:.3f} vs {f['p99']:.3f} ms  ratio {o['p99'] / f['p99']:.2f}x")
    print(f"4-client infer/s {o['throughput']:.0f} vs {f['throughput']:.0f}  ratio "
          f"{o['throughput'] / f['throughput']:.2f}x  (goal >= 0.8x)")
    print(f"CPU per 1000    {o['cpu_per_1000']:.3f} vs {f['cpu_per_1000']:.3f} s  ratio "
          f"{o['cpu_per_1000'] / f['cpu_per_1000']:.2f}x  (goal <= 1.5x)")
    print(f"RSS             {o['rss_start']:.0f} -> {o['rss_end']:.0f} vs "
          f"{f['rss_start']:.0f} -> {f['rss_end']:.0f} MiB  ratio {o['rss_end'] / f['rss_end']:.2f}x  (goal <= 2x)")
    print(f"PSS (after)     {o['pss_end']:.0f} vs {f['pss_end']:.0f} MiB  ratio {o['pss_end'] / f['pss_end']:.2f}x  "
          "(shared pages counted once across the tree)")
    print(f"peak RSS        {o['hwm_end']:.0f} vs {f['hwm_end']:.0f} MiB  ratio {o['hwm_end'] / f['hwm_end']:.2f}x  "
          "(VmHWM summed over the tree: what each process held at its most, start-up included)")
