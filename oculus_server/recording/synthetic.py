"""Synthetic episodes: realistic RecordTicks for tests, benchmarks and crash drills.

The arm traces a slow circle, the right controller follows it, commands lead the measured pose,
cameras deliver pre-encoded JPEGs at their own rate, and timing figures arrive once a second.

Run as a program it records an episode (optionally in real time), printing ``TICK <seq>
<t_wall_ns>`` after each tick written and ``FLUSH <seq>`` after each flush, so a parent process
can kill it mid-recording and know exactly what had been written::

    python -m oculus_server.recording.synthetic OUT.mcap --seconds 10 --realtime
"""

from __future__ import annotations

import argparse
import io
import math
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
from PIL import Image

from frankateach.messages import CameraFrame, FrankaAction, FrankaState
from frankateach.timing import RateSnapshot
from robot_formats.recording.records import (
    ButtonValue,
    ControlMode,
    Event,
    RecordTick,
    RobotCommand,
    RobotObservation,
    VRSample,
)


def make_jpeg(width: int, height: int, index: int, quality: int = 85) -> bytes:
    """Returns a JPEG of a shaded scene with a square at a position depending on `index`."""
    rng = np.random.default_rng(index)
    y, x = np.mgrid[0:height, 0:width]
    img = np.empty((height, width, 3), dtype=np.float64)
    img[..., 0] = 90 + 80 * x / width
    img[..., 1] = 110 + 60 * y / height
    img[..., 2] = 140 + 30 * np.sin(x / 17.0 + index)
    img += rng.normal(0.0, 6.0, img.shape)  # sensor noise keeps sizes realistic
    s = max(8, height // 6)
    cx = int((0.5 + 0.35 * math.cos(index / 5.0)) * (width - s))
    cy = int((0.5 + 0.35 * math.sin(index / 5.0)) * (height - s))
    img[cy : cy + s, cx : cx + s] = (200, 40, 40)
    buf = io.BytesIO()
    Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _quat_z(angle: float) -> np.ndarray:
    """xyzw of a downward-pointing hand (half turn about a horizontal axis at `angle`/2 from x)."""
    return np.array([math.cos(angle / 2), math.sin(angle / 2), 0.0, 0.0])


class SyntheticEpisode:
    """Deterministic RecordTick source.

    Args:
        hz: recording tick rate.
        cameras: camera name -> (width, height) pixels.
        camera_hz: frames per second per camera.
        t0_wall: wall time of tick 0 (default: now).
        jpeg_pool: distinct pre-encoded frames per camera (cycled).
        drop_ticks: tick indices to leave out (injects gaps).
    """

    def __init__(
        self,
        hz: float = 40.0,
        cameras: Mapping[str, tuple[int, int]] | None = None,
        camera_hz: float = 15.0,
        t0_wall: float | None = None,
        jpeg_pool: int = 8,
        drop_ticks: set[int] | frozenset[int] = frozenset(),
    ) -> None:
        self.hz = hz
        self.camera_hz = camera_hz
        self.cameras = dict(cameras if cameras is not None else {"front": (320, 240)})
        self.t0_wall = time.time() if t0_wall is None else t0_wall
        self.t0_mono = 1000.0
        self.drop_ticks = set(drop_ticks)
        self._jpegs = {
            n: [make_jpeg(w, h, i + 31 * k) for i in range(jpeg_pool)]
            for k, (n, (w, h)) in enumerate(self.cameras.items())
        }
        self._last_frame: dict[str, int] = {}

    def ee_pose(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Measured hand pose at time `t` (s since start): position m, quaternion xyzw."""
        a = 0.4 * t
        pos = np.array([0.45 + 0.1 * math.cos(a), 0.1 * math.sin(a), 0.35 + 0.05 * math.sin(2 * a)])
        return pos, _quat_z(0.2 * math.sin(a))

    def tick(self, i: int, t_wall: float | None = None, t_mono: float | None = None) -> RecordTick:
        """Returns tick `i` (its clock times may be overridden to record in real time)."""
        t = i / self.hz
        wall = self.t0_wall + t if t_wall is None else t_wall
        mono = self.t0_mono + t if t_mono is None else t_mono
        pos, quat = self.ee_pose(t - 0.01)
        gripper = -1.0 if (t % 8.0) < 4.0 else 1.0
        joints = np.array([0.1 * math.sin(0.4 * t + k) for k in range(7)]) + np.array([0, -0.2, 0, -2.4, 0, 2.3, 0.8])
        state = FrankaState(pos=pos, quat=quat, gripper=gripper, timestamp=wall - 0.012, joint_positions=joints)
        robot = RobotObservation(state=state, t_recv=mono - 0.004, t_recv_wall=wall - 0.004, rtt_s=0.0021)
        vr_seq = int(t * 50.0)
        hand = np.eye(4)
        hand[:3, 3] = [0.2 + 0.1 * math.cos(0.4 * t), -0.3, -0.4 + 0.1 * math.sin(0.4 * t)]
        c, s = math.cos(0.3 * math.sin(t)), math.sin(0.3 * math.sin(t))
        hand[:3, :3] = [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]
        buttons: dict[str, ButtonValue] = {
            "A": False, "B": False, "RTr": gripper > 0, "RG": True, "RThU": True, "RJ": False,
            "rightTrig": 1.0 if gripper > 0 else 0.0, "rightGrip": 1.0, "rightJS": (0.0, 0.0),
        }
        vr = VRSample(poses={"r": hand}, buttons=buttons, t_recv=mono - 0.006, seq=vr_seq)
        cmd_seq = int(t * 20.0)  # the 20 Hz control loop: a command is the same on every tick it is newest
        tc = cmd_seq / 20.0
        tpos, tquat = self.ee_pose(tc + 0.05)
        grip_cmd = -1.0 if (tc % 8.0) < 4.0 else 1.0
        command = RobotCommand(
            seq=cmd_seq,
            created=mono - (t - tc) - 0.002,
            action=np.array([0.3 * math.sin(0.4 * tc), 0.3 * math.cos(0.4 * tc), 0.0, 0.0, 0.0, 0.1, grip_cmd]),
            target=FrankaAction(pos=tpos, quat=tquat, gripper=grip_cmd, reset=False, timestamp=wall - (t - tc) - 0.002),
            mode=ControlMode.REAL_TIME,
            engaged=True,
            vr_seq=vr_seq,
            vr_t_recv=mono - 0.006,
        )
        cams: dict[str, tuple[CameraFrame, ...]] = {}
        for k, (name, (w, h)) in enumerate(self.cameras.items()):
            fseq = int(t * self.camera_hz)
            if self._last_frame.get(name) != fseq:
                self._last_frame[name] = fseq
                jpeg = self._jpegs[name][fseq % len(self._jpegs[name])]
                cams[name] = (CameraFrame(k, name, fseq, wall - 0.03, w, h, jpeg),)
        events: tuple[Event, ...] = ()
        if i == 0:
            events = (Event("episode_start", "episode started", wall, {"episode": 1}),)
        rates: dict[str, RateSnapshot] = {}
        counters: dict[str, float] = {}
        if i % int(self.hz) == 0 and i > 0:
            for name, hz in (("vr", 50.0), ("control", 20.0), ("robot", 20.0), ("record", self.hz)):
                rates[name] = RateSnapshot(name, hz, hz * (1 - 0.001 * math.sin(i)), i, 0, 1, 0.05, 0.8, 1.9, 0.4)
            counters = {"mcap_queue_depth": 2.0, "mcap_dropped": 0.0, "command_queue_depth": 1.0}
        return RecordTick(
            seq=i, t_mono=mono, t_wall=wall, vr=vr, robot=robot, command=command, mode=ControlMode.REAL_TIME,
            cameras=cams, events=events, rates=rates, counters=counters,
        )

    def ticks(self, n: int) -> Iterator[RecordTick]:
        """Yields ticks 0 … n−1 except the dropped ones."""
        for i in range(n):
            t = self.tick(i)
            if i not in self.drop_ticks:
                yield t


def write_synthetic(
    path: Path,
    seconds: float = 3.0,
    cameras: Mapping[str, tuple[int, int]] | None = None,
    hz: float = 40.0,
    drop_ticks: set[int] | frozenset[int] = frozenset(),
    t0_wall: float | None = None,
    metadata: Mapping[str, str] | None = None,
    outcome: str = "success",
    **writer_kwargs: object,
) -> Path:
    """Records a synthetic episode as fast as possible, closes it with `outcome` and returns the
    finished file's path."""
    from robot_formats.recording.writer import EpisodeWriter

    ep = SyntheticEpisode(hz=hz, cameras=cameras, t0_wall=t0_wall, drop_ticks=drop_ticks)
    meta = {"operator": "synthetic", "task": "trace a circle", "record_hz": str(hz), **(metadata or {})}
    cams = {n: (w, h, 45.0) for n, (w, h) in ep.cameras.items()}
    w = EpisodeWriter(path, meta, cameras=cams, **writer_kwargs)  # type: ignore[arg-type]
    for tick in ep.ticks(int(round(seconds * hz))):
        w.write(tick)
    return w.close(outcome)


def main(argv: list[str] | None = None) -> int:
    """Records a synthetic episode; see the module docstring."""
    from robot_formats.recording.writer import EpisodeWriter

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--hz", type=float, default=40.0)
    p.add_argument("--realtime", action="store_true", help="pace ticks on the wall clock")
    p.add_argument("--camera", action="append", default=[], metavar="NAME:WxH", help="e.g. front:320x240")
    p.add_argument("--flush-period", type=float, default=0.5)
    p.add_argument("--compression", default="zstd")
    args = p.parse_args(argv)
    cams = {}
    for spec in args.camera or ["front:320x240"]:
        name, size = spec.split(":")
        w, h = size.split("x")
        cams[name] = (int(w), int(h))
    ep = SyntheticEpisode(hz=args.hz, cameras=cams)
    w = EpisodeWriter(
        args.out,
        {"operator": "synthetic", "task": "trace a circle"},
        cameras={n: (a, b, 45.0) for n, (a, b) in cams.items()},
        flush_period_s=args.flush_period,
        compression=args.compression,
    )
    n = int(args.seconds * args.hz)
    start = time.monotonic()
    flushes = w.flushes
    for i in range(n):
        if args.realtime:
            delay = start + i / args.hz - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            tick = ep.tick(i, t_wall=time.time(), t_mono=time.monotonic())
        else:
            tick = ep.tick(i)
        w.write(tick)
        print(f"TICK {tick.seq} {int(round(tick.t_wall * 1e9))}", flush=True)
        if w.flushes != flushes:
            flushes = w.flushes
            print(f"FLUSH {w.last_flushed_tick_seq}", flush=True)
    w.close("success")
    print(f"CLOSED {w.path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
