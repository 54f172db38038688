"""`vla_client` stands on its own: with `vla_server`, `oculus_server`, MuJoCo and scipy made
unimportable, every client module imports and the DROID adapter builds a request (IK through
`robot_formats.kinematics`) and maps a reply — what a robot PC with only the client gets."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_SCRIPT = textwrap.dedent(
    """
    import importlib, pkgutil, sys

    BLOCKED = ("vla_server", "oculus_server", "mujoco", "scipy", "gymnasium_robotics", "torch")

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"blocked for this test: {name}")
            return None

    sys.meta_path.insert(0, Block())
    import numpy as np
    import vla_client
    for mod in pkgutil.iter_modules(vla_client.__path__):
        importlib.import_module(f"vla_client.{mod.name}")
    from robot_formats.robot_state import RobotStateIn, pos_quat_to_pose
    from robot_formats.kinematics import forward
    from vla_client import DroidAdapter, NativeAdapter

    adapter = DroidAdapter()
    pos, quat = forward(adapter.kin.home + 0.1)
    state = RobotStateIn(pose=pos_quat_to_pose(pos, quat), gripper=-1.0)
    image = np.zeros((48, 64, 3), np.uint8)
    request, q = adapter.request(image, "pick", state)
    assert request["observation/joint_position"].shape == (7,)
    np.testing.assert_allclose(forward(q)[0], pos, atol=1e-4)
    actions = adapter.actions(np.zeros((4, 8)), q)
    assert actions.shape == (4, 7) and np.all(np.isfinite(actions))
    native, _ = NativeAdapter().request(image, "pick", state)
    assert native["observation/state"].shape == (7,)
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    assert not loaded, loaded
    print("standalone ok")
    """
)


def test_the_client_imports_and_works_without_the_service_the_daemon_mujoco_or_scipy() -> None:
    out = subprocess.run([sys.executable, "-c", _SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "standalone ok" in out.stdout
