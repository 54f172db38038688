"""A stand-in for an unmodified Franka-Teach installation, run in its own interpreter.

`install_peer` writes a package named ``frankateach`` whose ``messages`` module declares the
record classes with exactly the layout of NYU-robot-learning/Franka-Teach (or of Labelbox's fork,
which adds optional joint fields), and `run_peer` runs a script with that package first on the
path — so ``pickle`` there resolves ``frankateach.messages.FrankaState`` to *their* class, as on a
lab machine, and never to this project's.

The scripts below follow what their code does (``frankateach/teleoperator.py``,
``franka-env/.../franka_env.py``, ``frankateach/network.py``, ``frankateach/data_collector.py``):
plain ``pickle.dumps(..., protocol=-1)`` / ``pickle.loads``, ``b"get_state"``, topic-filtered
SUB sockets stripped with ``lstrip``, and ``b"rgb_image " + pickle(dict(timestamp,
rgb_image=base64(JPEG)))`` camera messages.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

# Their records (field names, order and defaults as in their messages.py).
NYU_MESSAGES = '''
from dataclasses import dataclass
import numpy as np


@dataclass
class FrankaState:
    pos: np.ndarray
    quat: np.ndarray
    gripper: np.ndarray
    timestamp: float
    start_teleop: bool = False


@dataclass
class FrankaAction:
    pos: np.ndarray
    quat: np.ndarray
    gripper: np.ndarray
    reset: bool
    timestamp: float
'''

LABELBOX_MESSAGES = '''
from dataclasses import dataclass
from typing import Optional
import numpy as np


@dataclass
class FrankaState:
    pos: np.ndarray
    quat: np.ndarray
    gripper: np.ndarray
    timestamp: float
    start_teleop: bool = False
    joint_positions: Optional[np.ndarray] = None
    joint_velocities: Optional[np.ndarray] = None


@dataclass
class FrankaAction:
    pos: np.ndarray
    quat: np.ndarray
    gripper: np.ndarray
    reset: bool
    timestamp: float
    joint_positions: Optional[np.ndarray] = None
    control_mode: str = "CARTESIAN"
'''

# Writes the pickles their code produces, as hex, for the byte-level tests.
FIXTURES_SCRIPT = '''
import base64, json, pickle, sys, io
import numpy as np
from PIL import Image
from frankateach.messages import FrankaAction, FrankaState

buf = io.BytesIO()
Image.new("RGB", (64, 48), (200, 30, 30)).save(buf, format="JPEG")
out = {
    # teleoperator.py, first frame: a reset with a zero pose
    "reset_action": FrankaAction(pos=np.zeros(3), quat=np.zeros(4), gripper=-1, reset=True,
                                 timestamp=1700000000.25),
    # teleoperator.py, every frame: float32 pose
    "action": FrankaAction(pos=np.array([0.45, 0.03, 0.3]).astype(np.float32),
                           quat=np.array([1.0, 0.0, 0.0, 0.0]).astype(np.float32),
                           gripper=1, reset=False, timestamp=1700000000.5),
    # franka_server.py get_state(): float32 pose, the gripper as deoxys reports it
    "state": FrankaState(pos=np.array([0.457632, 0.0321814, 0.2653815]).astype(np.float32),
                         quat=np.array([0.9998586, 0.00880853, 0.01421072, 0.00179784]).astype(np.float32),
                         gripper=np.float64(-1.0), timestamp=1700000001.0),
}
if "joint_positions" in FrankaState.__dataclass_fields__:  # Labelbox
    out["state_with_joints"] = FrankaState(
        pos=np.zeros(3, np.float32), quat=np.array([0, 0, 0, 1], np.float32), gripper=0.0,
        timestamp=1.0, joint_positions=np.linspace(-0.5, 0.5, 7), joint_velocities=np.zeros(7))
hexes = {k: pickle.dumps(v, protocol=-1).hex() for k, v in out.items()}
hexes["state_protocol2"] = pickle.dumps(out["state"], protocol=2).hex()
hexes["camera"] = (b"rgb_image " + pickle.dumps(
    dict(timestamp=1700000002.125, rgb_image=base64.b64encode(buf.getvalue())), protocol=-1)).hex()
hexes["camera_realsense_ms"] = (b"rgb_image " + pickle.dumps(
    dict(timestamp=1700000002125.0, rgb_image=base64.b64encode(buf.getvalue())), protocol=-1)).hex()
hexes["intrinsics"] = (b"intrinsics " + pickle.dumps(np.eye(3), protocol=-1)).hex()
print(json.dumps(hexes))
'''

# The client flow of their operator / env / data collector against a server on `argv` ports.
CLIENT_SCRIPT = '''
import base64, io, json, pickle, sys, time
import numpy as np
import zmq
import frankateach.messages
from frankateach.messages import FrankaAction, FrankaState

host, control, state_port, commanded_port, cam_port = sys.argv[1], *map(int, sys.argv[2:6])
ctx = zmq.Context()
req = ctx.socket(zmq.REQ)
req.setsockopt(zmq.RCVTIMEO, 10000)
req.connect(f"tcp://{host}:{control}")
out = {"peer_module": frankateach.messages.__file__}

def call(payload):
    req.send(payload)
    return pickle.loads(req.recv())

def subscribe(port, topic):
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.CONFLATE, 1)
    sub.setsockopt(zmq.RCVTIMEO, 10000)
    sub.connect(f"tcp://{host}:{port}")
    sub.setsockopt(zmq.SUBSCRIBE, topic)
    return sub

# data_collector.py: ZMQKeypointSubscriber(topic="robot_state" / "commanded_robot_state"),
# running while the operator works.
state_sub = subscribe(state_port, b"robot_state")
commanded_sub = subscribe(commanded_port, b"commanded_robot_state")
time.sleep(0.3)

# teleoperator.py, first frame: reset with a zero quaternion, then move to the home offset.
robot_state = call(bytes(pickle.dumps(FrankaAction(pos=np.zeros(3), quat=np.zeros(4), gripper=-1,
                                                    reset=True, timestamp=time.time()), protocol=-1)))
out["reset_reply"] = [type(robot_state).__module__ + "." + type(robot_state).__qualname__,
                      robot_state.pos.tolist(), robot_state.quat.tolist()]
target_pos = robot_state.pos + np.array([0.0, 0.0, 0.05])
robot_state = call(bytes(pickle.dumps(FrankaAction(pos=target_pos.flatten().astype(np.float32),
                                                    quat=robot_state.quat.flatten().astype(np.float32),
                                                    gripper=-1, reset=False, timestamp=time.time()),
                                      protocol=-1)))
out["move_reply_pos"] = robot_state.pos.tolist()
time.sleep(0.5)
st = call(b"get_state")
out["get_state"] = [st.pos.tolist(), float(st.gripper), float(st.timestamp)]
# franka_env.py step(): its observation vector
out["features"] = np.concatenate((st.pos, st.quat, [st.gripper])).tolist()
# A command our server refuses (not a reset, zero quaternion): their code reads any reply as a state.
bad = call(bytes(pickle.dumps(FrankaAction(pos=st.pos, quat=np.zeros(4), gripper=1, reset=False,
                                            timestamp=time.time()), protocol=-1)))
out["error_reply"] = [bad.pos.tolist(), getattr(bad, "error", None)]

raw = state_sub.recv()
feed = pickle.loads(raw.lstrip(b"robot_state "))
out["state_feed"] = [type(feed).__qualname__, feed.pos.tolist(), bool(feed.start_teleop)]
raw = commanded_sub.recv()
cmd = pickle.loads(raw.lstrip(b"commanded_robot_state "))
out["commanded_feed"] = [type(cmd).__qualname__, cmd.pos.tolist(), bool(cmd.reset)]
# network.py ZMQCameraSubscriber("RGB").recv_rgb_image(), with PIL standing in for cv2.imdecode
if cam_port:
    raw = subscribe(cam_port, b"rgb_image").recv()
    data = pickle.loads(raw.lstrip(b"rgb_image "))
    from PIL import Image
    image = Image.open(io.BytesIO(base64.b64decode(data["rgb_image"])))
    out["camera"] = [image.format, image.size, float(data["timestamp"])]
print(json.dumps(out))
'''


def install_peer(root: Path, flavour: str = "nyu") -> Path:
    """Writes the stand-in ``frankateach`` package under `root`; returns the path to put first."""
    pkg = root / f"peer_{flavour}" / "frankateach"
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "messages.py").write_text(NYU_MESSAGES if flavour == "nyu" else LABELBOX_MESSAGES)
    return pkg.parent


def run_peer(peer_path: Path, script: str, *args: object, timeout_s: float = 60.0) -> Any:
    """Runs `script` with the peer package first on the path; returns its JSON output."""
    env = dict(os.environ, PYTHONPATH=str(peer_path), PYTHONNOUSERSITE="1")
    out = subprocess.run(
        [sys.executable, "-c", script, *map(str, args)], cwd=peer_path, env=env, capture_output=True,
        text=True, timeout=timeout_s,
    )
    if out.returncode != 0:
        raise AssertionError(f"the Franka-Teach peer failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])
