"""`vla-server`: keys create/list/revoke, models, and `serve` as a real process — both ports, a
stream session and an openpi client, JSON logs, then SIGTERM: sessions get a reason and 1001,
the process exits 0 and takes its workers with it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from robot_formats.openpi_codec import packb, unpackb
from tests.vla_service import auth_msg, frame_msg
from vla_server.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_keys_create_list_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = str(tmp_path / "d")
    assert main(["keys", "--data-dir", data, "create", "--tier", "pro", "--name", "lab-a"]) == 0
    out, err = capsys.readouterr()
    key = out.strip()
    assert key.startswith("vla_") and "not shown again" in err and "3 sessions, 30 Hz" in err
    assert main(["keys", "--data-dir", data, "create", "--tier", "enterprise", "--name", "ops", "--admin"]) == 0
    capsys.readouterr()
    assert main(["keys", "--data-dir", data, "list"]) == 0
    out, _ = capsys.readouterr()
    assert "lab-a" in out and "ops" in out and key not in out and key.split("_", 2)[2] not in out
    assert main(["keys", "--data-dir", data, "revoke", "lab-a"]) == 0
    capsys.readouterr()
    assert main(["keys", "--data-dir", data, "list", "--active"]) == 0
    out, _ = capsys.readouterr()
    assert "lab-a" not in out and "ops" in out
    assert main(["keys", "--data-dir", data, "revoke", "lab-a"]) == 2
    assert "no active key" in capsys.readouterr().err
    assert main(["keys", "--data-dir", data, "create", "--tier", "pro", "--name", "ops"]) == 2


def test_models_lists_the_catalog(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "color-reach" in out and "onnx-tiny" in out


def test_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("registry: {eviction: random}\n")
    assert main(["serve", "--config", str(cfg)]) == 2
    assert "registry.eviction" in capsys.readouterr().err


@pytest.mark.slow
def test_serve_process_end_to_end_and_graceful_shutdown(tmp_path: Path) -> None:
    data = tmp_path / "data"
    catalog = tmp_path / "models.yaml"
    catalog.write_text(
        "models:\n"
        "  - {id: arm, backend: scripted, params: {action: [0.2, 0, 0, 0, 0, 0, 1], horizon: 4}}\n"
    )
    assert main(["keys", "--data-dir", str(data), "create", "--tier", "pro", "--name", "t"]) == 0
    key = _new_key(data)
    env = {**os.environ, "INFERENCE_QUEUE_MAX_SIZE": "3", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "vla_server.cli", "serve", "--port", "0", "--openpi-port", "0", "--data-dir", str(data),
         "--catalog", str(catalog), "--no-web", "--host", "127.0.0.1"],
        cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True,
    )
    logs: list[dict] = []
    try:
        ports = None
        deadline = time.monotonic() + 60
        while ports is None and time.monotonic() < deadline:
            line = proc.stderr.readline()  # type: ignore[union-attr]
            assert line, f"serve exited early: {proc.poll()}"
            rec = json.loads(line)  # every log line is one JSON object
            logs.append(rec)
            if rec.get("event") == "listening":
                ports = (rec["port"], rec["openpi_port"])
        assert ports is not None
        port, openpi_port = ports
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).json()["status"] == "ok"
        assert httpx.get(f"http://127.0.0.1:{openpi_port}/healthz", timeout=10).status_code == 200

        # openpi wire format: metadata frame, then msgpack request -> action chunk
        headers = {"Authorization": f"Api-Key {key}"}
        with connect(f"ws://127.0.0.1:{openpi_port}", additional_headers=headers, open_timeout=10) as pi:
            meta = unpackb(pi.recv(timeout=30))
            assert meta["model"] == "arm" and "7-D" in meta["action_space"]
            obs = {"observation/image": np.zeros((48, 64, 3), np.uint8), "prompt": "pick up the red cube",
                   "observation/state": np.array([0.5, 0, 0.3, 3.14, 0, 0, -1.0])}
            pi.send(packb(obs))
            reply = unpackb(pi.recv(timeout=30))
            assert reply["actions"].shape == (4, 7) and reply["actions"][0, 0] == pytest.approx(0.2)
            assert "infer_ms" in reply["server_timing"]
            droid = {"observation/exterior_image_1_left": np.zeros((224, 224, 3), np.uint8),
                     "observation/joint_position": np.array([0, -0.785, 0, -2.356, 0, 1.571, 0.785]),
                     "observation/gripper_position": np.array([0.0]), "prompt": "pick up the red cube"}
            pi.send(packb(droid))  # DROID keys: joints through the Panda's forward kinematics
            assert unpackb(pi.recv(timeout=30))["actions"].shape == (4, 7)
        bad = {"Authorization": "Api-Key nope"}
        with (
            pytest.raises(InvalidStatus, match="401"),
            connect(f"ws://127.0.0.1:{openpi_port}", additional_headers=bad),
        ):
            pass

        with connect(f"ws://127.0.0.1:{port}/v1/stream", open_timeout=10) as ws:
            ws.send(auth_msg(key, "arm"))
            assert json.loads(ws.recv(timeout=10))["type"] == "connected"
            ws.send(frame_msg())
            act = json.loads(ws.recv(timeout=30))
            assert act["type"] == "action" and act["action"][0] == pytest.approx(0.2)
            models = httpx.get(f"http://127.0.0.1:{port}/v1/models", headers={"X-API-Key": key}, timeout=10).json()
            worker_pid = models["models"][0]["pid"]
            assert worker_pid and Path(f"/proc/{worker_pid}").exists()

            proc.send_signal(signal.SIGTERM)
            err = json.loads(ws.recv(timeout=10))
            assert err == {"type": "error", "message": "server shutting down"}
            with pytest.raises(Exception) as closed:
                ws.recv(timeout=10)
            assert closed.value.rcvd.code == 1001 and closed.value.rcvd.reason == "server shutting down"  # type: ignore[attr-defined]
        assert proc.wait(timeout=20) == 0
        rest = proc.stderr.read()  # type: ignore[union-attr]
        events = [json.loads(x).get("event") for x in rest.splitlines() if x.strip()]
        assert "sessions_closed" in events and "service_stopped" in events
        assert not _alive(worker_pid)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)


def _new_key(data: Path) -> str:
    """A key in the service's database (the one `keys create` printed went to captured stdout)."""
    from vla_server.auth.store import KeyStore

    return KeyStore(data / "keys.sqlite3").create("serve-test", "pro")[1]


def _alive(pid: int) -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split()[2] == "Z":
                    return False
        except FileNotFoundError:
            return False
        time.sleep(0.05)
    return True


def _ephemeral(args: list[str], tmp_path: Path) -> tuple[subprocess.Popen, str]:
    """Starts `vla-server serve --ephemeral-key` as users and the daemon run it; returns the
    process and its ready line (stdout)."""
    cmd = [sys.executable, "-m", "vla_server.cli", "serve", "--no-config", "--port", "0", "--no-openpi",
           "--no-web", "--no-arena", "--log-format", "text", "--log-level", "warning", "--ephemeral-key", "pro",
           *args]
    (tmp_path / "tmp").mkdir(exist_ok=True)
    with open(tmp_path / "svc.log", "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True,
                                env=dict(os.environ, PYTHONUNBUFFERED="1", TMPDIR=str(tmp_path / "tmp")))
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, f"no ready line; log: {(tmp_path / 'svc.log').read_text()[-2000:]}"
    return proc, line


def _stream_one_action(port: int, key: str) -> None:
    with connect(f"ws://127.0.0.1:{port}/v1/stream", open_timeout=10) as ws:
        ws.send(auth_msg(key, model="color-reach"))
        assert json.loads(ws.recv(timeout=10))["type"] == "connected"
        ws.send(frame_msg())
        assert json.loads(ws.recv(timeout=30))["type"] == "action"


def test_serve_with_an_ephemeral_key_prints_it_and_cleans_up(tmp_path: Path) -> None:
    """No --data-dir: a temporary key store, gone after SIGTERM; the key works while it runs and
    never reaches the log."""
    from robot_formats.service_ready import parse_ready_line

    proc, line = _ephemeral([], tmp_path)
    try:
        ready = parse_ready_line(line)
        assert ready.key and ready.key.startswith("vla_") and ready.openpi_port is None
        _stream_one_action(ready.port, ready.key)
        temp_dirs = list((tmp_path / "tmp").glob("vla-server-*"))
        assert len(temp_dirs) == 1 and (temp_dirs[0] / "keys.sqlite3").is_file()  # the temporary key store
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    assert not temp_dirs[0].exists()
    assert ready.key not in (tmp_path / "svc.log").read_text()


def test_ephemeral_key_in_a_given_data_dir_is_revoked_at_exit_and_the_parent_lifeline_holds(tmp_path: Path) -> None:
    from robot_formats.service_ready import parse_ready_line

    data = tmp_path / "data"
    proc, line = _ephemeral(["--data-dir", str(data), "--parent-pid", str(os.getpid())], tmp_path)
    try:
        ready = parse_ready_line(line)
        assert ready.key is not None
        _stream_one_action(ready.port, ready.key)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    from vla_server.auth.store import KeyStore

    store = KeyStore(data / "keys.sqlite3")
    assert store.verify(ready.key) is None and len(store.list_keys()) == 1


def test_a_pinned_model_not_in_the_catalog_exits_2_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--no-config", "--port", "0", "--pin", "no-such-model", "--ephemeral-key", "pro"]) == 2
    assert "'no-such-model' is not in the service's catalog" in capsys.readouterr().err
