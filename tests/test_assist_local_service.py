"""`LocalService`: the inference service as the daemon's child on a free loopback port with a
temporary key — it answers, stops, refuses an unknown model clearly, and dies with its parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from oculus_server.assist.local_service import LocalService
from oculus_server.errors import OculusServerError
from vla_client import SyncVLAStreamingClient

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
JPEG_IMAGE = np.full((48, 64, 3), 90, np.uint8)


def gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if gone(pid):
            return True
        time.sleep(0.05)
    return gone(pid)


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def test_the_local_service_answers_with_its_temporary_key_and_stops(tmp_path: Path) -> None:
    svc = LocalService("color-reach", log_path=tmp_path / "svc.log")
    svc.start(timeout_s=90)
    try:
        assert svc.alive() and svc.url.startswith("ws://127.0.0.1:") and svc.key.startswith("vla_")
        data_dir = svc.data_dir
        assert data_dir is not None and data_dir.is_dir()
        with SyncVLAStreamingClient(svc.url, svc.key) as client:
            client.connect("color-reach", target_fps=10)
            client.send_frame(JPEG_IMAGE, "pick up the red cube", {"pose": [0.45, 0.0, 0.3, 3.14159, 0.0, 0.0]})
            action = client.receive_action(timeout=30)
            assert action.action.shape == (7,) and np.isfinite(action.action).all()
    finally:
        pid = svc.proc.pid if svc.proc else -1
        svc.stop()
    assert wait_gone(pid, 5.0) and not data_dir.exists()


def test_an_unknown_model_is_refused_naming_it(tmp_path: Path) -> None:
    svc = LocalService("no-such-model", log_path=tmp_path / "svc.log")
    with pytest.raises(OculusServerError, match="'no-such-model' is not in the service's catalog"):
        svc.start(timeout_s=60)
    assert not svc.alive()


PARENT = """
import sys, time
from pathlib import Path
from oculus_server.assist.local_service import LocalService
svc = LocalService("color-reach", log_path=Path(sys.argv[1]))
svc.start(timeout_s=90)
print(svc.proc.pid, flush=True)
time.sleep(600)
"""


def test_the_service_and_its_workers_die_with_a_killed_parent(tmp_path: Path) -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(tmp_path / "svc.log")], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()
        assert line.strip().isdigit(), f"parent said {line!r}; log: {(tmp_path / 'svc.log').read_text()[-2000:]}"
        child = int(line)
        deadline = time.monotonic() + 60  # the pinned model's worker starts in the background
        while not children(child) and time.monotonic() < deadline:
            time.sleep(0.2)
        workers = children(child)
        assert workers, "the service started no model worker"
        parent.send_signal(signal.SIGKILL)
        parent.wait(5)
        assert wait_gone(child, 3.0), "the service outlived its parent"
        for w in workers:
            assert wait_gone(w, 5.0), "a model worker outlived the service"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_a_model_from_the_assist_catalog_is_served(tmp_path: Path) -> None:
    """--assist-catalog: the local service loads its models from that file (e.g. a trained policy)."""
    import yaml

    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(yaml.safe_dump({"models": [{"id": "my-reach", "backend": "scripted",
                                                   "params": {"action": [0.1, 0, 0, 0, 0, 0, 1]}}]}))
    svc = LocalService("my-reach", log_path=tmp_path / "svc.log", catalog=str(catalog))
    svc.start(timeout_s=90)
    try:
        with SyncVLAStreamingClient(svc.url, svc.key) as client:
            client.connect("my-reach", target_fps=10)
            client.send_frame(JPEG_IMAGE, "pick up the red cube", {"pose": [0.45, 0.0, 0.3, 3.14159, 0.0, 0.0]})
            assert client.receive_action(timeout=30).action.tolist() == pytest.approx([0.1, 0, 0, 0, 0, 0, 1])
    finally:
        svc.stop()
    refused = LocalService("color-reach", log_path=tmp_path / "svc2.log", catalog=str(catalog))
    with pytest.raises(OculusServerError, match="'color-reach' is not in the service's catalog"):
        refused.start(timeout_s=60)
