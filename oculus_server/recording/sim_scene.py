"""The simulated robot's scene for recordings: its MJCF text and where its cameras sit.

Building the MuJoCo model costs ~170 MB of memory; the daemon must not pay that just to attach
a 15 KB XML to each recording. So the scene is described by a short-lived child interpreter
(``python -m oculus_server.recording.sim_scene``), which builds the simulator's own model,
prints the XML and the camera mounts as JSON, and exits; the daemon never imports MuJoCo.
Only recordings of the simulated robot get it (never a recording of a real arm).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from frankateach.background import run_in_background, start_niced
from robot_formats.recording.camera_mounts import CameraMount, camera_mounts_from_dict
from robot_formats.recording.scene import SceneModel, scene_model_from_dict

log = logging.getLogger(__name__)

SCENE_TIMEOUT_S = 60.0  # the child: imports + model build + compile, on a loaded machine
ATTACHMENT_NAME = "panda_scene.xml"


@dataclass(frozen=True)
class SimScene:
    """The simulator's scene.

    Attributes:
        xml: the MJCF of the simulated scene (robot, table, cubes, cameras).
        cameras: camera name → mount (optical frame, base or TCP relative).
        bodies: the table's boxes and the cubes (where their poses are in a state blob), for the
            3D view (`robot_formats.recording.scene`); None from an older description.
    """

    xml: str
    cameras: dict[str, CameraMount] = field(default_factory=dict)
    bodies: SceneModel | None = None

    def attachments(self) -> list[tuple[str, str, bytes]]:
        """The recording attachment: (name, media type, bytes)."""
        return [(ATTACHMENT_NAME, "application/xml", self.xml.encode())]


def parse_scene(text: str) -> SimScene:
    """Parses the child's JSON output.

    Raises:
        ValueError: not the expected JSON object.
    """
    d = json.loads(text)
    if not isinstance(d, dict) or not isinstance(d.get("xml"), str):
        raise ValueError("expected a JSON object with an 'xml' string")  # noqa: TRY004 - bad input, like bad JSON
    bodies = scene_model_from_dict(d["bodies"]) if isinstance(d.get("bodies"), dict) else None
    return SimScene(d["xml"], camera_mounts_from_dict(d.get("cameras") or {}), bodies)


class SimSceneFetch:
    """Describes the sim scene in a child process, in the background.

    `start()` returns at once; `result(timeout_s)` waits for the answer (None when it failed or
    is not ready in time). `close()` kills a child still running. The child also exits by itself
    if this process dies. It runs at `nice` (config ``helper_nice``): it can wait, the loops cannot.
    """

    def __init__(self, timeout_s: float = SCENE_TIMEOUT_S, nice: int = 0) -> None:
        self.timeout_s = timeout_s
        self.nice = nice
        self._done = threading.Event()
        self._scene: SimScene | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.error = ""
        self._thread = threading.Thread(target=self._run, name="sim-scene", daemon=True)

    def start(self) -> SimSceneFetch:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            with self._lock:
                if self._closed:
                    return
                cmd = [sys.executable, "-m", "oculus_server.recording.sim_scene", str(os.getpid()), str(self.nice)]
                env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
                self._proc = start_niced(  # at its nice from the first import on
                    lambda: subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                             start_new_session=True),  # a scheduling group of its own
                    self.nice)
            try:
                out, err = self._proc.communicate(timeout=self.timeout_s)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.communicate()
                self.error = f"the scene description took over {self.timeout_s:.0f} s"
                return
            if self._proc.returncode != 0:
                lines = (err or "").strip().splitlines()
                self.error = f"exit {self._proc.returncode}: {lines[-1] if lines else ''}"
                return
            self._scene = parse_scene(out)
        except (OSError, ValueError) as exc:
            self.error = str(exc)
        finally:
            if self.error:
                log.warning("no simulator scene for the recordings (%s)", self.error)
            self._done.set()

    def result(self, timeout_s: float = 0.0) -> SimScene | None:
        """The scene, waiting at most `timeout_s`; None if it failed or is not ready yet."""
        self._done.wait(timeout_s)
        return self._scene

    def close(self) -> None:
        """Kills the child if it still runs (the daemon is stopping)."""
        with self._lock:
            self._closed = True
            proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
        self._thread.join(timeout=2.0)


# -- the child ---------------------------------------------------------------------------------


def _watch_parent(parent_pid: int) -> None:
    """Leaves at once if the parent dies (a short-lived child must never outlive it)."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.1)
        os._exit(75)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def describe_scene() -> dict[str, Any]:
    """Builds the simulator's model here (in the child) and returns the scene as a JSON dict."""
    import mujoco
    import numpy as np

    from frankateach.sim.model import TCP_SITE, build_spec, home_qpos

    spec = build_spec(cameras=True)
    model = spec.compile()
    xml = spec.to_xml()
    data = mujoco.MjData(model)
    data.qpos[:] = home_qpos(model)
    mujoco.mj_forward(model, data)
    tcp = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, TCP_SITE)
    base_T_tcp = np.eye(4)
    base_T_tcp[:3, :3] = data.site_xmat[tcp].reshape(3, 3)
    base_T_tcp[:3, 3] = data.site_xpos[tcp]
    optical = np.diag([1.0, -1.0, -1.0])  # MuJoCo camera (looks along −z, y up) → optical (z ahead, y down)
    cameras: dict[str, Any] = {}
    for cam_id in range(model.ncam):
        name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, cam_id)
        base_T_cam = np.eye(4)
        base_T_cam[:3, :3] = data.cam_xmat[cam_id].reshape(3, 3) @ optical
        base_T_cam[:3, 3] = data.cam_xpos[cam_id]
        fixed = model.cam_bodyid[cam_id] == 0  # on the world body: does not move with the arm
        parent_T_cam = base_T_cam if fixed else np.linalg.inv(base_T_tcp) @ base_T_cam
        quat_wxyz = np.empty(4)
        mujoco.mju_mat2Quat(quat_wxyz, parent_T_cam[:3, :3].reshape(-1).copy())
        cameras[name] = {
            "parent": "robot_base" if fixed else "ee",
            "position": [float(v) for v in parent_T_cam[:3, 3]],
            "orientation": [float(quat_wxyz[1]), float(quat_wxyz[2]), float(quat_wxyz[3]), float(quat_wxyz[0])],
            "fovy_deg": float(model.cam_fovy[cam_id]),
        }
    return {"xml": xml, "cameras": cameras, "bodies": _bodies(model)}


def _bodies(model: Any) -> dict[str, Any]:
    """The world's boxes (table top and legs) and the free cubes, as `scene.SceneModel` reads them."""
    import mujoco

    from frankateach.sim.model import CUBES

    def quat_xyzw(wxyz: Any) -> list[float]:
        return [float(wxyz[1]), float(wxyz[2]), float(wxyz[3]), float(wxyz[0])]

    boxes = []
    for g in range(model.ngeom):
        if model.geom_bodyid[g] == 0 and model.geom_type[g] == mujoco.mjtGeom.mjGEOM_BOX:
            boxes.append({"position": [float(v) for v in model.geom_pos[g]],
                          "orientation": quat_xyzw(model.geom_quat[g]),
                          "half_size": [float(v) for v in model.geom_size[g]],
                          "rgba": [float(v) for v in model.geom_rgba[g]]})
    cubes = {}
    for name in CUBES:
        b = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name)
        if b < 0:
            continue
        g = int(model.body_geomadr[b])
        cubes[name] = {"qpos": int(model.jnt_qposadr[model.body_jntadr[b]]),
                       "half_size": [float(v) for v in model.geom_size[g]],
                       "rgba": [float(v) for v in model.geom_rgba[g]]}
    return {"nq": int(model.nq), "boxes": boxes, "cubes": cubes}


def main(argv: list[str] | None = None) -> int:
    """``python -m oculus_server.recording.sim_scene [PARENT_PID [NICE]]``: prints the scene as JSON."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) > 1:
        run_in_background(int(args[1]))
    if args:
        _watch_parent(int(args[0]))
    sys.stdout.write(json.dumps(describe_scene()))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
