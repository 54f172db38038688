"""The camera render process: its own model copy, offscreen OpenGL, JPEG, one PUB per camera.

Started by `frankateach.sim.cameras.CameraStreamer` with multiprocessing's *spawn* method, so it
shares nothing with the physics process but a small shared-memory block holding the newest qpos
snapshot: ``[seq, wall_time_s, qpos...]``. MUJOCO_GL (and PYOPENGL_PLATFORM) are set by the
parent before the spawn, because MuJoCo picks its GL backend when it is first imported.
"""

from __future__ import annotations

import io
import logging
import os
import signal
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from frankateach.camera_format import CAMERA_FORMATS
from frankateach.constants import (
    CAM_PORT_OFFSET,
    HOST,
    SIM_CAMERA_FPS,
    SIM_CAMERA_HEIGHT,
    SIM_CAMERA_WIDTH,
    SIM_CAMERAS,
    SIM_JPEG_QUALITY,
)

log = logging.getLogger(__name__)

STATS_WINDOW_S = 2.0  # fps is measured over this many seconds
RENDER_EXIT_GRACE_S = 0.3  # s after the parent's death before the renderer is forced out


@dataclass(frozen=True)
class CameraConfig:
    """What to render and where to publish it.

    Attributes:
        host: interface the PUB sockets bind.
        port_offset: camera `i` publishes on ``port_offset + i``.
        names: camera names in the model, in camera-id order.
        width, height: image size, pixels.
        fps: frames per second per camera.
        jpeg_quality: Pillow JPEG quality (1–95).
        nice: the render process's nice value (0: the simulator's; above: rendering gives way to
            the simulator's answers and to other processes' loops, see `frankateach.background`).
        wire_format: "msgpack" (this project's frames) or "franka_teach" (``b"rgb_image " +
            pickle``, what Franka-Teach's camera server publishes; used in pickle mode).
    """

    host: str = HOST
    port_offset: int = CAM_PORT_OFFSET
    names: tuple[str, ...] = SIM_CAMERAS
    width: int = SIM_CAMERA_WIDTH
    height: int = SIM_CAMERA_HEIGHT
    fps: float = SIM_CAMERA_FPS
    jpeg_quality: int = SIM_JPEG_QUALITY
    wire_format: str = "msgpack"
    nice: int = 0

    def __post_init__(self) -> None:
        if self.wire_format not in CAMERA_FORMATS:
            raise ValueError(f"camera wire format must be one of {CAMERA_FORMATS}, got {self.wire_format!r}")
        if not 0 <= self.nice <= 19:
            raise ValueError(f"camera render nice must be 0..19, got {self.nice}")

    def port(self, camera_id: int) -> int:
        return self.port_offset + camera_id


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    """Encodes an (H, W, 3) uint8 RGB image as JPEG."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=int(quality))
    return buf.getvalue()


def render_main(
    config: CameraConfig,
    shared_qpos: Any,
    stats: Any,
    stop: Any,
    status: Any,
    parent_pid: int,
    death_signal: int = 0,
) -> None:
    """Entry point of the render process (see module doc).

    Args:
        config: cameras, size, rate and ports.
        shared_qpos: multiprocessing Array('d', 2 + nq) = [seq, wall time s, qpos...].
        stats: multiprocessing Array('d', 2·ncam) = [fps per camera..., mean render ms per camera...].
        stop: multiprocessing Event; set by the parent to end the loop.
        status: multiprocessing Queue; receives ("ok", gl_backend) once rendering works,
            ("gl-error", message) if OpenGL is unusable (the parent may try another backend)
            or ("error", message) for anything else (e.g. a camera port in use).
        parent_pid: the process must not outlive this parent: the loop ends when it is no longer
            our parent, and `ParentWatch` forces the exit shortly after (see `frankateach.lifeline`).
        death_signal: signal the kernel sends when the parent's starting thread exits (0: none).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops us
    from frankateach.background import run_in_background
    from frankateach.lifeline import ParentWatch

    run_in_background(config.nice)  # before any thread: they inherit it

    watch = ParentWatch(parent_pid, lambda: None, death_signal=death_signal, grace_s=RENDER_EXIT_GRACE_S)
    watch.start()
    gl = os.environ.get("MUJOCO_GL", "") or "default"
    pubs: list = []
    stage = "binding camera ports"
    try:
        from frankateach.camera_format import encode_camera_frame, encode_franka_teach_frame
        from frankateach.network import Publisher
        from frankateach.records import CameraFrame
        from frankateach.timing import Ticker

        for i in range(len(config.names)):
            pubs.append(Publisher(config.host, config.port(i), role=f"camera {i} ({config.names[i]})"))
        stage = "GL"
        import mujoco  # picks the GL backend from MUJOCO_GL

        stage = "building the model"
        from frankateach.sim.model import build_model

        model = build_model(cameras=True, width=config.width, height=config.height)
        data = mujoco.MjData(model)
        cam_ids = []
        for name in config.names:
            cid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, name)
            if cid < 0:
                raise ValueError(f"camera {name!r} is not in the sim model")
            cam_ids.append(cid)
        mujoco.mj_resetDataKeyframe(model, data, mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_KEY, "home"))
        mujoco.mj_kinematics(model, data)
        mujoco.mj_camlight(model, data)
        stage = "GL"
        renderer = mujoco.Renderer(model, height=config.height, width=config.width)
        for flag in (mujoco.mjtRndFlag.mjRND_SHADOW, mujoco.mjtRndFlag.mjRND_REFLECTION,
                     mujoco.mjtRndFlag.mjRND_SKYBOX, mujoco.mjtRndFlag.mjRND_FOG):
            renderer.scene.flags[flag] = False
        renderer.update_scene(data, camera=cam_ids[0])
        renderer.render()  # fails here if the GL context is unusable
    except Exception as exc:  # report why; the parent decides what to try next
        for pub in pubs:
            pub.close()
        kind = "gl-error" if stage == "GL" else "error"
        status.put((kind, f"MUJOCO_GL={gl}, {stage}: {exc.__class__.__name__}: {exc}"))
        return
    status.put(("ok", gl or "default"))

    nq = model.nq
    qbuf = np.frombuffer(shared_qpos.get_obj(), dtype=np.float64)
    n = len(cam_ids)
    seqs = [0] * n
    times: list[list[float]] = [[] for _ in range(n)]
    render_s = [0.0] * n
    ticker = Ticker(config.fps, name="sim-cameras")
    try:
        while ticker.wait(stop):
            if os.getppid() != parent_pid:
                break
            with shared_qpos.get_lock():
                seq, stamp = qbuf[0], qbuf[1]
                if seq > 0:  # before the first snapshot, keep the home keyframe
                    data.qpos[:] = qbuf[2 : 2 + nq]
            stamp = stamp if seq > 0 else time.time()
            mujoco.mj_kinematics(model, data)
            mujoco.mj_camlight(model, data)
            for i, cid in enumerate(cam_ids):
                t0 = time.perf_counter()
                renderer.update_scene(data, camera=cid)
                jpeg = encode_jpeg(renderer.render(), config.jpeg_quality)
                render_s[i] += time.perf_counter() - t0
                if config.wire_format == "franka_teach":
                    pubs[i].publish(encode_franka_teach_frame(jpeg, float(stamp)))
                else:
                    pubs[i].publish(
                        encode_camera_frame(
                            CameraFrame(i, config.names[i], seqs[i], float(stamp), config.width,
                                        config.height, jpeg)
                        )
                    )
                seqs[i] += 1
                now = time.monotonic()
                times[i].append(now)
                while times[i] and now - times[i][0] > STATS_WINDOW_S:
                    times[i].pop(0)
                span = times[i][-1] - times[i][0] if len(times[i]) > 1 else 0.0
                stats[i] = (len(times[i]) - 1) / span if span > 0 else 0.0
                stats[n + i] = render_s[i] / seqs[i] * 1e3
    finally:
        for pub in pubs:
            pub.close()
        renderer.close()
        watch.close()
