"""The unmodified ``openpi-client`` 0.1.2 (PyPI) against our openpi endpoint, from its own venv.

``openpi-client`` pins numpy < 2, so it never enters our environment: this test builds a separate
virtual environment in a temporary directory (``openpi-client==0.1.2`` plus ``typing_extensions``,
which 0.1.2 imports without declaring), and runs ``WebsocketClientPolicy(host, port, api_key)``
in a subprocess against our server. It also packs our byte-fixture values with openpi's own
``msgpack_numpy.packb`` and compares the bytes with ours. Set ``OPENPI_CLIENT_VENV`` to reuse a
prepared venv. Skipped (with pip's message) when pip cannot install from the registry.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from robot_formats.openpi_codec import packb
from vla_server.openpi.server import (
    OpenPIServerConfig,
    create_openpi_app,
    serve_in_thread,
)

pytestmark = pytest.mark.slow

KEY = "lab-key-0123456789"
PIP_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def openpi_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ready = os.environ.get("OPENPI_CLIENT_VENV")
    if ready and (Path(ready) / "bin" / "python").exists():
        return Path(ready) / "bin" / "python"
    venv = tmp_path_factory.mktemp("openpi-client-venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    try:
        proc = subprocess.run(
            [
                str(py),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "openpi-client==0.1.2",
                "typing_extensions",
            ],
            check=False,
            capture_output=True,
            text=True,
            timeout=PIP_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        pytest.skip(f"pip could not install openpi-client==0.1.2 within {PIP_TIMEOUT_S} s (registry unreachable?)")
    if proc.returncode != 0:
        pytest.skip(f"pip could not install openpi-client==0.1.2 from the registry: {proc.stderr.strip()[-600:]}")
    return py


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    async def infer(model_id: str, obs: dict[str, Any]) -> dict[str, Any]:
        if obs.get("prompt") == "explode":
            raise RuntimeError("the model refused")
        img = obs["observation/exterior_image_1_left"]
        joints = obs["observation/joint_position"]
        # (8, 8): row 0 echoes what arrived so the client can check it crossed intact
        actions = np.zeros((8, 8), np.float32)
        actions[0, :7] = joints
        actions[1, 0] = float(img.mean())
        actions[1, 1] = float(img.shape[0])
        return {"actions": actions, "model": model_id}

    app = create_openpi_app(
        infer,
        {"model": "droid-test", "action_horizon": 8},
        lambda key: key == KEY,
        OpenPIServerConfig(model="droid-test"),
    )
    with serve_in_thread(app) as p:
        yield p


CLIENT_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import websockets
    from openpi_client import msgpack_numpy
    from openpi_client.websocket_client_policy import WebsocketClientPolicy

    port, key = int(sys.argv[1]), sys.argv[2]
    out = {}
    policy = WebsocketClientPolicy("127.0.0.1", port, api_key=key)
    out["metadata"] = policy.get_server_metadata()
    replies = []
    for i in range(3):
        obs = {
            "observation/exterior_image_1_left": np.full((224, 224, 3), 10 + i, np.uint8),
            "observation/wrist_image_left": np.zeros((224, 224, 3), np.uint8),
            "observation/joint_position": np.arange(7, dtype=np.float64) + i,
            "observation/gripper_position": np.array([0.5]),
            "prompt": "pick up the red cube",
        }
        r = policy.infer(obs)
        replies.append({"actions": r["actions"].tolist(), "dtype": r["actions"].dtype.str,
                        "timing": sorted(r["server_timing"]), "model": r["model"]})
    out["replies"] = replies
    try:
        policy.infer({"prompt": "explode"})
    except RuntimeError as exc:
        out["error"] = str(exc)
    try:
        WebsocketClientPolicy("127.0.0.1", port, api_key="wrong")
    except websockets.InvalidStatus as exc:
        out["wrong_key_status"] = exc.response.status_code
    fixtures = [np.array([1, 2, 3], dtype="<i4"), np.int64(7), np.float32(1.5), np.bool_(True),
                {"actions": np.zeros((2, 3), np.float32), "server_timing": {"infer_ms": 1.5}},
                np.array(["ab", "c"]), np.array(3.0)]
    out["packed"] = [msgpack_numpy.packb(f).hex() for f in fixtures]
    print(json.dumps(out))
    """
)


def test_unmodified_openpi_client_against_our_endpoint(openpi_python: Path, port: int, tmp_path: Path) -> None:
    script = tmp_path / "client.py"
    script.write_text(CLIENT_SCRIPT)
    proc = subprocess.run(
        [str(openpi_python), str(script), str(port), KEY],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["metadata"] == {"model": "droid-test", "action_horizon": 8}
    for i, r in enumerate(out["replies"]):
        actions = np.array(r["actions"])
        assert actions.shape == (8, 8) and r["dtype"] == "<f4" and r["model"] == "droid-test"
        assert actions[0, :7].tolist() == (np.arange(7) + i).tolist()
        assert actions[1, 0] == 10 + i  # mean of the image sent
        assert actions[1, 1] == 224
        assert r["timing"] == (["infer_ms"] if i == 0 else ["infer_ms", "prev_total_ms"])
    assert "Error in inference server" in out["error"] and "the model refused" in out["error"]
    assert out["wrong_key_status"] == 401
    ours = [
        packb(v).hex()
        for v in [np.array([1, 2, 3], dtype="<i4"), np.int64(7), np.float32(1.5), np.bool_(True),
                  {"actions": np.zeros((2, 3), np.float32), "server_timing": {"infer_ms": 1.5}},
                  np.array(["ab", "c"]), np.array(3.0)]
    ]
    assert out["packed"] == ours


SERVICE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from openpi_client.websocket_client_policy import WebsocketClientPolicy

    port, key = int(sys.argv[1]), sys.argv[2]
    policy = WebsocketClientPolicy("127.0.0.1", port, api_key=key)
    obs = {
        "observation/exterior_image_1_left": np.full((224, 224, 3), 60, np.uint8),
        "observation/wrist_image_left": np.zeros((224, 224, 3), np.uint8),
        "observation/state": np.array([0.5, 0.0, 0.3, 3.14, 0.0, 0.0, -1.0]),
        "prompt": "pick up the red cube",
    }
    replies = [policy.infer(obs) for _ in range(2)]
    print(json.dumps({"metadata": policy.get_server_metadata(),
                      "actions": [r["actions"].tolist() for r in replies],
                      "timing": [sorted(r["server_timing"]) for r in replies]}))
    """
)


def test_unmodified_openpi_client_against_the_service(openpi_python: Path, tmp_path: Path) -> None:
    from tests.openpi_service import service_with_openpi

    reach = [0.2, 0.0, -0.1, 0.0, 0.0, 0.0, 1.0]
    models = [{"id": "scripted-chunk", "backend": "scripted", "params": {"action": reach, "horizon": 4}}]
    script = tmp_path / "client.py"
    script.write_text(SERVICE_SCRIPT)
    with service_with_openpi(tmp_path, models) as svc:
        proc = subprocess.run(
            [str(openpi_python), str(script), str(svc.openpi_port), svc.key],
            check=False, capture_output=True, text=True, timeout=90, cwd=tmp_path,
        )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["metadata"]["model"] == "scripted-chunk" and out["metadata"]["action_dim"] == 7
    for actions in out["actions"]:
        assert np.allclose(actions, [reach] * 4, atol=1e-6)
    assert out["timing"] == [["infer_ms"], ["infer_ms", "prev_total_ms"]]
